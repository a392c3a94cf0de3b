#!/bin/sh
# The wake-up bound of the ping-pong figure (issue 23): the driver BEAM pings, pinned (every process
# `taskset -c 0`), bench/ei_node.c, the four variants of bench/ping_bound.c (block, block1, epoll, uv: the same
# minimal echo node waiting for its next message four ways) and bench/cnode_bench.c, interleaved, ROUNDS rounds
# of COUNT pings each (beam_bench's prof mode, one driver a measurement), and prints the median p50 of each and
# its ratio to ei_node's.
#
#   sh bench/ping_bound.sh BUILD [ROUNDS [COUNT]]     (default 12 rounds of 10000 pings: ~2 minutes)
#
# Not part of `make bench` unless BENCH_PING_BOUND=1 (it is a bound, not a figure of the library).
set -u
BUILD=${1:-build}
ROUNDS=${2:-12}
COUNT=${3:-10000}
if [ -n "${BENCH_QUICK:-}${MAKELEVEL:-}" ] && [ -z "${BENCH_PING_BOUND:-}" ]; then
  echo "bench/ping_bound.sh: skipped under make bench (BENCH_PING_BOUND=1 to run it)"; exit 0
fi
SUB=ping_bound
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
build_plain cnode_bench
build_ei ei_node ping_bound
erlc -o "$OUT" "$HERE/beam_bench.erl" || exit 1

PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; PIDS=""; }
start_epmd
trap 'cleanup; kill $EPMD_PID 2>/dev/null; exit 1' INT TERM
trap 'cleanup; kill $EPMD_PID 2>/dev/null' EXIT
COOKIE=pb$$$(date +%s)
H=127.0.0.1
ERLOPTS="-noshell -noinput -setcookie $COOKIE -connect_all false -kernel net_ticktime 60 -pa $OUT"
RES=$OUT/results.txt
: >"$RES"
IMPLS="ei block block1 epoll uv cnode"
echo "ping_bound: $ROUNDS rounds x $COUNT pings, ${PIN:-unpinned}; load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# one measurement: a fresh node of impl, one driver run of COUNT pings (after a 500-ping warm-up run)
one() { # impl round
  name=pb$1$2x$$
  case $1 in
    ei) $PIN "$OUT/ei_node" "$name" $H "$COOKIE" single >"$OUT/n.log" 2>&1 & ;;
    cnode) $PIN "$OUT/cnode_bench" "$name@$H" "$COOKIE" >"$OUT/n.log" 2>&1 & ;;
    *) $PIN "$OUT/ping_bound" "$name" $H "$COOKIE" "$1" >"$OUT/n.log" 2>&1 & ;;
  esac
  NP=$!; PIDS="$NP"
  i=0
  until grep -q ready "$OUT/n.log" 2>/dev/null && epmd -port "$ERL_EPMD_PORT" -names 2>/dev/null | grep -q "name $name "; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "ping_bound.sh: $1 did not start"; cat "$OUT/n.log"; return 1; }; sleep 0.1
  done
  out=$($PIN erl $ERLOPTS -name "d$name@$H" -run beam_bench prof ping "$name@$H" "$COUNT" 0 1 2 | tail -n 1)
  p50=$(echo "$out" | sed -n 's/.*p50 => \([0-9.e+-]*\).*/\1/p')
  echo "impl=$1 round=$2 p50=$p50" | tee -a "$RES"
  cleanup
}

for round in $(seq 1 "$ROUNDS"); do
  for impl in $IMPLS; do one "$impl" "$round" || exit 1; done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v impls="$IMPLS" '
/^impl=/ { split($1, a, "="); split($3, b, "="); if (b[2] != "") v[a[2], ++n[a[2]]] = b[2] + 0 }
function median(k,   m, i, j, t, x) {
  m = n[k]; for (i = 1; i <= m; i++) x[i] = v[k, i]
  for (i = 2; i <= m; i++) for (j = i; j > 1 && x[j - 1] > x[j]; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
  return m % 2 ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2
}
END {
  k = split(impls, im, " "); e = median("ei")
  for (i = 1; i <= k; i++) { m = median(im[i]); printf "bench=pingbound_p50 impl=%s value=%.2f unit=us runs=%d ratio_ei=%.3f\n", im[i], m, n[im[i]], m / e }
}' "$RES" | tee "$OUT/summary.txt"
