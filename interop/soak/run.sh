#!/bin/sh
# The soak (`make soak`, `make soak-asan`): sh interop/soak/run.sh BUILD [DURATION_S]. Picks free loopback ports,
# starts its own epmd, runs interop/soak/soak.escript (a C node, two Horde stand-in nodes and churn; see its head)
# and kills what it started by pid. The log directory (every node's log, soak.csv with the samples) is kept and
# named on the first line. SOAK_SAN=1: BUILD is a sanitizer build; every ASan/UBSan report (leaks included) fails.
set -u
BUILD=${1:-build}
DURATION=${2:-3600}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
. "$HERE/../runner_lib.sh"
case "$BUILD" in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
[ -x "$BUILD/cnode" ] || { echo "FAIL setup: $BUILD/cnode not built"; echo "soak: 0 passed, 1 failed"; exit 1; }

new_run_dir cnode-soak
cleanup() {
  trap - EXIT INT TERM HUP
  stop_started "$PIDFILE" "$SUITE_PID" "$EPMD_PID"
}
trap 'cleanup' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

set -- $(erl -noshell -noinput -eval '
  Open = fun() -> {ok, S} = gen_tcp:listen(0, [{ip, {127,0,0,1}}]), S end,
  S1 = Open(), S2 = Open(), S3 = Open(),
  [io:format("~b ", [element(2, inet:port(S))]) || S <- [S1, S2, S3]], halt().')
EPMD_PORT=$1 FREE_PORT=$2 HTTP_PORT=$3
epmd -port "$EPMD_PORT" >"$TMP/epmd.log" 2>&1 &
EPMD_PID=$!
i=0
until epmd -port "$EPMD_PORT" -names >/dev/null 2>&1; do
  i=$((i + 1))
  [ $i -gt 50 ] && { echo "FAIL setup: epmd did not start"; echo "soak: 0 passed, 1 failed"; exit 1; }
  sleep 0.1
done
echo "soak: $BUILD/cnode for $DURATION s, logs and soak.csv in $TMP"

SAN=$TMP/san
if [ -n "${SOAK_SAN:-}" ]; then
  mkdir -p "$SAN"
  # a small quarantine (ASan's default is 256 MiB) so that the RSS samples show the node, not freed memory held back
  export ASAN_OPTIONS="log_path=$SAN/asan:detect_leaks=1:abort_on_error=0:quarantine_size_mb=8"
  export UBSAN_OPTIONS="log_path=$SAN/ubsan:print_stacktrace=1:halt_on_error=1"
fi
mkdir -p "$TMP/home"
HOME=$TMP/home ERL_EPMD_PORT=$EPMD_PORT timeout -s KILL $((DURATION + 400)) escript "$HERE/soak.escript" \
  --cnode "$BUILD/cnode" --repo "$REPO" --build "$BUILD" --epmd-port "$EPMD_PORT" --free-port "$FREE_PORT" \
  --http-port "$HTTP_PORT" --duration "$DURATION" --logdir "$TMP" --tmp "$TMP" --pidfile "$PIDFILE" &
SUITE_PID=$!
wait "$SUITE_PID"
RC=$?
SUITE_PID=
cleanup
if [ -n "${SOAK_SAN:-}" ] && [ "$(ls "$SAN" | wc -l)" -gt 0 ]; then
  for f in "$SAN"/*; do echo "== sanitizer report $f"; head -40 "$f"; done
  echo "soak: sanitizer report(s) in $SAN"
  echo "sanitizers: 0 passed, 1 failed"
  exit 1
fi
[ -n "${SOAK_SAN:-}" ] && echo "sanitizers: 1 passed, 0 failed"
exit $RC
