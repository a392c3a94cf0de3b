#!/bin/sh
# The Horde path at scale (issue 23): a delta_crdt registry of N keys on three C nodes (bench/crdt_bench.c, a
# plain program on the installed API) side by side with three BEAM nodes running the BEAM-side peer of the interop
# suites (interop/crdt_peer.erl, written from the wire spec; real delta_crdt/Horde needs hex). For each N: memory
# per key, time/CPU/bytes/messages for a new third member to converge, CPU of an idle round.
#
#   sh bench/crdt.sh BUILD     (make bench: 10k, 100k and 1M keys; BENCH_QUICK=1: 10k keys, < 1 minute)
#
# CRDT_SIZES overrides the sizes, CRDT_BEAM_MAX the largest N the BEAM side runs (default 100000: see docs/crdt.md
# "At scale" for why 1M is out of its reach). Output: `bench=... impl=cnode|beam value=... unit=...` lines (also in
# BUILD/bench/crdt/results.txt) and a table.
set -u
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
OUT=$BUILD/bench/crdt
mkdir -p "$OUT"
[ -f "$BUILD/libcnode.a" ] || { echo "bench/crdt.sh: $BUILD/libcnode.a not built (make all)"; exit 1; }
EI=$(ls -d /usr/lib/erlang/lib/erl_interface-* | head -n 1)
# the public headers as installed (<cnode/...>), staged by the Makefile's rule for examples
make -s --no-print-directory -C "$ROOT" BUILD="$BUILD" \
  $(for h in cn_base.h cn_term.h cn_tls.h cnode.h horde.h; do echo "$BUILD/include/cnode/$h"; done) || exit 1
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -I"$BUILD/include" -o "$OUT/crdt_bench" "$HERE/crdt_bench.c" \
  "$BUILD/libcnode.a" -L"$EI/lib" -lei -luv -luring -lcares -lssl -lcrypto -lpthread -lm || exit 1
erlc -o "$OUT" "$ROOT/interop/crdt_peer.erl" "$HERE/crdt_beam.erl" || exit 1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ERL_EPMD_PORT=$(free_port)
export ERL_EPMD_PORT
epmd -port "$ERL_EPMD_PORT" -address 127.0.0.1 >/dev/null 2>&1 &
EPMD=$!
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; kill $EPMD 2>/dev/null; wait $EPMD 2>/dev/null; }
trap 'cleanup; exit 1' INT TERM
trap cleanup EXIT
sleep 0.3

SIZES=${CRDT_SIZES:-10000 100000 1000000}
if [ -n "${BENCH_QUICK:-}" ]; then SIZES=${CRDT_SIZES:-10000}; CRDT_IDLE_MS=${CRDT_IDLE_MS:-2000}; fi
export CRDT_IDLE_MS=${CRDT_IDLE_MS:-4000}
BEAM_MAX=${CRDT_BEAM_MAX:-100000}
RES=$OUT/results.txt
: >"$RES"
COOKIE=bench$$
T0=$(date +%s)
for n in $SIZES; do
  echo "-- $n keys: cnode"
  taskset -c 0 "$OUT/crdt_bench" "$ERL_EPMD_PORT" "$n" | tee -a "$RES"
  if [ "$n" -gt "$BEAM_MAX" ]; then
    echo "bench=crdt_join_$n impl=beam value=- unit=ms skipped=over_CRDT_BEAM_MAX" | tee -a "$RES"
    continue
  fi
  echo "-- $n keys: beam (crdt_peer)"
  NP=""
  for x in a b c; do
    taskset -c 0 erl -noshell -noinput -setcookie $COOKIE -connect_all false -pa "$OUT" -name "cb$x$$@127.0.0.1" \
      -eval 'crdt_beam:peer()' >"$OUT/beam_$x.log" 2>&1 &
    NP="$NP $!"
  done
  PIDS="$PIDS $NP"
  taskset -c 0 erl -noshell -noinput -setcookie $COOKIE -connect_all false -pa "$OUT" -name "cbd$$@127.0.0.1" \
    -run crdt_beam main "$n" "cba$$@127.0.0.1" "cbb$$@127.0.0.1" "cbc$$@127.0.0.1" | tee -a "$RES"
  for p in $NP; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
done
T1=$(date +%s)

awk -v secs=$((T1 - T0)) '
function f(x) { return x == "" ? "-" : (x + 0 >= 100 ? sprintf("%.0f", x) : sprintf("%.2f", x)) }
function field(k, line,  r) { # the value of k=... on a bench line
  if (!match(" " line, " " k "=[^ ]*")) return ""
  r = substr(" " line, RSTART + length(k) + 2, RLENGTH - length(k) - 2); return r
}
/^bench=/ {
  b = field("bench", $0); if (!(b in seen)) { seen[b] = 1; order[++n] = b }
  v[b, field("impl", $0)] = field("value", $0); unit[b] = field("unit", $0)
}
END {
  printf "\n%-28s %14s %14s %9s  %s\n", "bench", "beam", "cnode", "c/beam", "unit"
  for (k = 1; k <= n; k++) {
    b = order[k]; x = v[b, "cnode"]; y = v[b, "beam"]
    r = (x != "" && y != "" && y != "-" && y + 0 > 0) ? sprintf("%.2f", x / y) : "-"
    printf "%-28s %14s %14s %9s  %s\n", b, y == "-" ? "-" : f(y), f(x), r, unit[b]
  }
  printf "(%d s; three nodes pinned to one CPU per implementation; c/beam < 1 is better for every row)\n", secs
}' "$RES" | tee "$OUT/summary.txt"
