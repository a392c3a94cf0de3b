#!/bin/sh
# Interop tests against real BEAM nodes: `sh interop/run.sh BUILD [test...]` (what `make interop` runs).
# Picks free loopback ports, starts OTP's own epmd in the foreground (we own its pid), then runs
# interop/suite.escript, which starts cnode and erl/elixir peers and prints `ok name` / `FAIL name: reason`
# and `interop: N passed, N failed`. Every process the suite starts is listed in a pid file; the trap below
# kills whatever is still alive from it, so nothing outlives a failed or interrupted run.
# INTEROP_FAKE=1 runs the suite against interop/fake_cnode.escript (an erl stand-in) to check the harness.
# INTEROP_SEED=N fixes the term generator's seed; INTEROP_KEEP=1 keeps the log directory.
# INTEROP_ONLY="suite crdt_suite ..." runs only the named suites (suite.escript is `suite`).
set -u

BUILD=${1:-build}
[ $# -gt 0 ] && shift
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
case "$BUILD" in /*) BUILD_ABS=$BUILD ;; *) BUILD_ABS=$(pwd)/$BUILD ;; esac
CNODE=$BUILD_ABS/cnode
. "$HERE/runner_lib.sh"

for tool in erl escript epmd elixir; do
  command -v $tool >/dev/null 2>&1 || { echo "interop: '$tool' not found (apt-get install erlang-nox elixir)"; \
    echo "interop: 0 passed, 1 failed"; exit 1; }
done
if [ -z "${INTEROP_FAKE:-}" ] && [ ! -x "$CNODE" ]; then
  echo "FAIL setup: $CNODE not built (make all)"
  echo "interop: 0 passed, 1 failed"
  exit 1
fi

new_run_dir cnode-interop

# Kills every pid the suite recorded with "+pid" and not yet with "-pid" (it has seen those exit), then epmd.
cleanup() {
  trap - EXIT INT TERM HUP
  stop_started "$PIDFILE" "$SUITE_PID" "$EPMD_PID"
  # The summary line stays the last line of output: where the logs are was said at the start.
  if [ -z "${INTEROP_KEEP:-}" ] && [ "${RC:-1}" = 0 ]; then
    rm -rf "$TMP"
  fi
}
trap 'cleanup' EXIT
trap 'RC=130; exit 130' INT
trap 'RC=143; exit 143' TERM HUP

# Two free ports: one for this run's epmd, one where nothing listens (the `make run` test's own epmd).
PORTS=$(erl -noshell -noinput -eval '
  Open = fun() -> {ok, S} = gen_tcp:listen(0, [{ip, {127,0,0,1}}, {reuseaddr, false}]), S end,
  S1 = Open(), S2 = Open(),
  {ok, P1} = inet:port(S1), {ok, P2} = inet:port(S2),
  io:format("~b ~b~n", [P1, P2]), halt().') || { echo "interop: cannot pick ports"; exit 1; }
set -- $PORTS "$@"
EPMD_PORT=$1
FREE_PORT=$2
shift 2

HOME_DIR=$TMP/home
mkdir -p "$HOME_DIR"
epmd -port "$EPMD_PORT" >"$TMP/epmd.log" 2>&1 &
EPMD_PID=$!
i=0
until ERL_EPMD_PORT=$EPMD_PORT epmd -port "$EPMD_PORT" -names >/dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 50 ] || ! kill -0 "$EPMD_PID" 2>/dev/null; then
    echo "FAIL setup: epmd did not start on port $EPMD_PORT: $(cat "$TMP/epmd.log")"
    echo "interop: 0 passed, 1 failed"
    RC=1
    exit 1
  fi
  sleep 0.1
done

echo "interop: epmd port $EPMD_PORT (pid $EPMD_PID), spare port $FREE_PORT, logs in $TMP (kept on failure)"
# Whether INTEROP_ONLY (empty: all) names a suite.
wanted() { [ -z "${INTEROP_ONLY:-}" ] || case " $INTEROP_ONLY " in *" $1 "*) true ;; *) false ;; esac; }
PASSED=0
FAILED=0
if wanted suite; then
  # The suite keeps its own time budget (225 s); `timeout` is the backstop if it hangs anyway.
  HOME=$HOME_DIR ERL_EPMD_PORT=$EPMD_PORT timeout -s KILL 240 escript "$HERE/suite.escript" \
    --cnode "$CNODE" --repo "$REPO" --build "$BUILD_ABS" --epmd-port "$EPMD_PORT" --free-port "$FREE_PORT" \
    --tmp "$TMP" --pidfile "$PIDFILE" ${INTEROP_FAKE:+--fake} "$@" >"$TMP/main.out" 2>&1 &
  SUITE_PID=$!
  tail -n +1 -f "$TMP/main.out" --pid=$SUITE_PID 2>/dev/null | grep -v '^interop: [0-9]* passed'
  wait "$SUITE_PID"
  RC=$?
  SUITE_PID=
  if [ ! -e "$TMP/done" ]; then
    echo "FAIL suite: suite.escript stopped (status $RC) before finishing"
    [ $RC = 0 ] && RC=1
  fi
  summary=$(grep '^interop: [0-9]* passed' "$TMP/main.out" | tail -n 1)
  PASSED=$(echo "$summary" | awk '{print $2+0}')
  FAILED=$(echo "$summary" | awk '{print $4+0}')
  [ -z "$summary" ] && FAILED=$((FAILED + 1))
fi

# Further suites: each interop/*_suite.escript gets the same arguments and prints `ok`/`FAIL` lines and
# `<name>: N passed, N failed`; they are summed into the one closing line. (Selecting tests by name on the
# command line applies to suite.escript only.)
if [ $# -eq 0 ]; then
  for extra in "$HERE"/*_suite.escript; do
    [ -e "$extra" ] || continue
    base=$(basename "$extra" .escript)
    wanted "$base" || continue
    : >"$TMP/$base.out" # exists before tail starts, so tail never misses the suite's output
    HOME=$HOME_DIR ERL_EPMD_PORT=$EPMD_PORT timeout -s KILL 300 escript "$extra" \
      --cnode "$CNODE" --repo "$REPO" --build "$BUILD_ABS" --epmd-port "$EPMD_PORT" --free-port "$FREE_PORT" \
      --tmp "$TMP" --pidfile "$PIDFILE" >"$TMP/$base.out" 2>&1 &
    SUITE_PID=$!
    tail -n +1 -f "$TMP/$base.out" --pid=$SUITE_PID 2>/dev/null
    wait "$SUITE_PID"
    xrc=$?
    SUITE_PID=
    line=$(grep -E '^[a-z0-9_]+: [0-9]+ passed, [0-9]+ failed' "$TMP/$base.out" | tail -n 1)
    if [ -z "$line" ]; then
      echo "FAIL $base: stopped (status $xrc) before its summary"
      FAILED=$((FAILED + 1))
    else
      PASSED=$((PASSED + $(echo "$line" | awk '{print $2+0}')))
      FAILED=$((FAILED + $(echo "$line" | awk '{print $4+0}')))
      [ $xrc != 0 ] && [ "$(echo "$line" | awk '{print $4+0}')" = 0 ] && FAILED=$((FAILED + 1))
    fi
  done
fi
echo "interop: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ] && RC=0 || RC=1
exit $RC
