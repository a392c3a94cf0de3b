#!/bin/sh
# PORT_PLEASE2 lookups per second: cnode-epmd against OTP's epmd, measured in the same run with the same
# client (bench/epmd_load.c, built here). As /work/shared/BENCHMARKING.md asks, the comparison runs pinned:
# server and client both on CPU 0 (taskset -c 0); runs alternate between the two servers and the median is
# kept. Prints a table, `bench=epmd_lookup impl=<cnode-epmd|otp-epmd> value=<v> unit=lookups/s` lines and
# `ratio=<cnode/otp>`. `sh bench/epmd.sh BUILD`; BENCH_QUICK=1 for a short run (under 30 s).
set -u
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
case "$BUILD" in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
CEPMD=$BUILD/cnode-epmd
OEPMD=$(command -v epmd || echo /usr/bin/epmd)
LOAD=$BUILD/bench/epmd_load
[ -x "$CEPMD" ] || { echo "bench/epmd.sh: $CEPMD not built (make all)"; exit 1; }
[ -x "$OEPMD" ] || { echo "bench/epmd.sh: OTP's epmd not found"; exit 1; }
mkdir -p "$BUILD/bench"
${CC:-cc} -O2 -Wall -Wextra -Werror -o "$LOAD" "$HERE/epmd_load.c" || exit 1

if [ -n "${BENCH_QUICK:-}" ]; then SECS=2; REPS=1; else SECS=5; REPS=3; fi
CONC=${EPMD_BENCH_CONC:-8}
PIN="taskset -c 0"
command -v taskset >/dev/null 2>&1 || PIN=""

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap cleanup EXIT INT TERM

start_server() { # impl port
  # Both log the lookups the client cuts off when it stops; that goes to a file.
  if [ "$1" = cnode-epmd ]; then $PIN "$CEPMD" -port "$2" -address 127.0.0.1 2>>"$BUILD/bench/epmd_srv.log" &
  else $PIN "$OEPMD" -port "$2" -address 127.0.0.1 2>>"$BUILD/bench/epmd_srv.log" & fi
  PIDS="$PIDS $!"
  i=0
  until "$OEPMD" -port "$2" -names >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 50 ] && { echo "bench/epmd.sh: $1 did not start"; exit 1; }; sleep 0.1
  done
}

CPORT=$(free_port); start_server cnode-epmd "$CPORT"
OPORT=$(free_port); start_server otp-epmd "$OPORT"

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: >"$BUILD/bench/epmd_c.txt"; : >"$BUILD/bench/epmd_o.txt"
r=0
while [ $r -lt $REPS ]; do
  $PIN "$LOAD" "$CPORT" "$SECS" "$CONC" | awk '{print $1}' >>"$BUILD/bench/epmd_c.txt" || echo "cnode-epmd: errors"
  $PIN "$LOAD" "$OPORT" "$SECS" "$CONC" | awk '{print $1}' >>"$BUILD/bench/epmd_o.txt" || echo "otp-epmd: errors"
  r=$((r + 1))
done
C=$(median <"$BUILD/bench/epmd_c.txt")
O=$(median <"$BUILD/bench/epmd_o.txt")

printf '%-12s %14s   %s\n' impl "lookups/s" "runs (${SECS}s each, $CONC in flight, ${PIN:-unpinned})"
printf '%-12s %14s   %s\n' cnode-epmd "$C" "$(tr '\n' ' ' <"$BUILD/bench/epmd_c.txt")"
printf '%-12s %14s   %s\n' otp-epmd "$O" "$(tr '\n' ' ' <"$BUILD/bench/epmd_o.txt")"
echo "bench=epmd_lookup impl=cnode-epmd value=$C unit=lookups/s"
echo "bench=epmd_lookup impl=otp-epmd value=$O unit=lookups/s"
awk -v c="$C" -v o="$O" 'BEGIN { if (o > 0) printf "ratio=%.2f\n", c / o; else print "ratio=nan" }'
