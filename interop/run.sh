#!/bin/sh
# Interop tests against real BEAM nodes: `sh interop/run.sh BUILD [test...]` (what `make interop` runs).
# Picks free loopback ports, starts OTP's own epmd in the foreground (we own its pid), then runs
# interop/suite.escript, which starts cnode and erl/elixir peers and prints `ok name` / `FAIL name: reason`
# and `interop: N passed, N failed`. Every process the suite starts is listed in a pid file; the trap below
# kills whatever is still alive from it, so nothing outlives a failed or interrupted run.
# INTEROP_FAKE=1 runs the suite against interop/fake_cnode.escript (an erl stand-in) to check the harness.
# INTEROP_SEED=N fixes the term generator's seed; INTEROP_KEEP=1 keeps the log directory.
# INTEROP_ONLY="suite crdt_suite ..." runs only the named suites (suite.escript is `suite`).
# INTEROP_LANES=N (`make interop` and `make test` use 2) runs the suites in N lanes side by side: each lane is
# this script again (its own epmd on its own ports, its own temp and pid file, so node names and files never
# meet), taking the next suite from a queue, longest first; a suite's output is printed whole when it ends (one
# lane at a time), with `== NAME (lane L): N passed, N failed, T s`. The suites in INTEROP_HEAVY (default
# term_suite tls_suite dirty_suite: CPU-bound, or timing-sensitive) never run beside each other: a lane takes one
# only while no other lane runs one (else the next suite in the queue). The closing line sums every lane.
# Selecting tests by name (arguments) runs one lane.
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

# Whether INTEROP_ONLY (empty: all) names a suite.
wanted() { [ -z "${INTEROP_ONLY:-}" ] || case " $INTEROP_ONLY " in *" $1 "*) true ;; *) false ;; esac; }

# ---- lanes: the queue, N lanes, then the solo suites -----------------------------------------------------
# Seconds a suite took (run.sh's figure, start-up included; 2 vCPUs under load; 15 for a new suite): only the
# queue's order, longest first, so that the lanes end together.
suite_secs() {
  case $1 in
    term_suite) echo 105 ;; discovery_suite) echo 95 ;; tls_suite) echo 87 ;; suite) echo 67 ;;
    registry_suite) echo 34 ;; ops_suite) echo 27 ;; proc_suite) echo 22 ;; resilience_suite | epmd_suite) echo 18 ;;
    pubsub_suite) echo 18 ;; *) echo 15 ;;
  esac
}
LANES=${INTEROP_LANES:-1}
if [ "$LANES" -gt 1 ] 2>/dev/null && [ $# -eq 0 ] && [ -z "${INTEROP_QUEUE:-}" ]; then
  Q=$(mktemp -d "${TMPDIR:-/tmp}/cnode-interop-lanes.XXXXXX")
  mkdir "$Q/todo"
  for f in "$HERE/suite.escript" "$HERE"/*_suite.escript; do
    [ -e "$f" ] || continue
    base=$(basename "$f" .escript)
    wanted "$base" || continue
    : >"$Q/todo/$(printf '%04d' $((9999 - $(suite_secs "$base"))))_$base"
  done
  LANE_PIDS=""
  stop_lanes() {
    trap - INT TERM HUP
    for p in $LANE_PIDS; do kill -TERM "$p" 2>/dev/null; done
    for p in $LANE_PIDS; do wait "$p" 2>/dev/null; done
    echo "interop: interrupted"
    echo "interop: 0 passed, 1 failed"
    exit "$1"
  }
  trap 'stop_lanes 130' INT
  trap 'stop_lanes 143' TERM HUP
  echo "interop: $LANES lanes:$(ls "$Q/todo" | sed 's/^[0-9]*_/ /' | tr -d '\n')"
  i=0
  while [ $i -lt "$LANES" ]; do
    i=$((i + 1))
    INTEROP_QUEUE=$Q INTEROP_LANE=$i sh "$0" "$BUILD" &
    LANE_PIDS="$LANE_PIDS $!"
  done
  for p in $LANE_PIDS; do wait "$p"; done
  LANE_PIDS=""
  trap - INT TERM HUP
  PASSED=0
  FAILED=0
  for r in "$Q"/result.*; do
    [ -e "$r" ] || continue
    read -r p f <"$r"
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
  done
  lanes_run=$(ls "$Q" | grep -c '^result\.')
  if [ "$lanes_run" != "$LANES" ]; then
    echo "FAIL lanes: $((LANES - lanes_run)) lane(s) stopped before their summary"
    FAILED=$((FAILED + 1))
  fi
  left=$(ls "$Q/todo")
  if [ -n "$left" ]; then
    echo "FAIL lanes: suites not run:$(echo "$left" | sed 's/^[0-9]*_/ /' | tr -d '\n')"
    FAILED=$((FAILED + 1))
  fi
  [ "$FAILED" = 0 ] && rm -rf "$Q"
  echo "interop: $PASSED passed, $FAILED failed"
  [ "$FAILED" = 0 ]
  exit $?
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

QUEUE=${INTEROP_QUEUE:-}
LANE=${INTEROP_LANE:-}
# In a lane, a block of output is printed whole, one lane at a time (flock on the queue's lock file).
say() { if [ -n "$QUEUE" ]; then flock "$QUEUE/print.lock" cat "$1"; else cat "$1"; fi; }
echo "interop${LANE:+ lane $LANE}: epmd port $EPMD_PORT (pid $EPMD_PID), spare port $FREE_PORT, logs in $TMP (kept on failure)" \
  >"$TMP/start.print"
say "$TMP/start.print"
PASSED=0
FAILED=0

# run_suite NAME [test...]: runs interop/NAME.escript (`suite` is suite.escript, which alone takes test names) with
# the run's arguments, shows its output (live when not in a lane) and adds its counts to PASSED and FAILED. Each
# suite prints `ok`/`FAIL` lines and `<name>: N passed, N failed` (suite.escript: `interop: ...`, left out here
# so that the closing line below stays the only one).
run_suite() {
  base=$1
  shift
  if [ "$base" = suite ]; then
    # The suite keeps its own time budget (225 s); `timeout` is the backstop if it hangs anyway.
    out=$TMP/main.out limit=240 pattern='^interop: [0-9]+ passed, [0-9]+ failed'
  else
    out=$TMP/$base.out limit=300 pattern='^[a-z0-9_]+: [0-9]+ passed, [0-9]+ failed'
  fi
  : >"$out" # exists before tail starts, so tail never misses the suite's output
  t0=$(date +%s)
  HOME=$HOME_DIR ERL_EPMD_PORT=$EPMD_PORT timeout -s KILL $limit escript "$HERE/$base.escript" \
    --cnode "$CNODE" --repo "$REPO" --build "$BUILD_ABS" --epmd-port "$EPMD_PORT" --free-port "$FREE_PORT" \
    --tmp "$TMP" --pidfile "$PIDFILE" $([ "$base" = suite ] && echo ${INTEROP_FAKE:+--fake}) "$@" >"$out" 2>&1 &
  SUITE_PID=$!
  [ -z "$QUEUE" ] && tail -n +1 -f "$out" --pid=$SUITE_PID 2>/dev/null | grep -v '^interop: [0-9]* passed'
  wait "$SUITE_PID"
  xrc=$?
  SUITE_PID=
  secs=$(($(date +%s) - t0))
  note=$TMP/$base.note
  : >"$note"
  line=$(grep -E "$pattern" "$out" | tail -n 1)
  p=$(echo "$line" | awk '{print $2+0}')
  f=$(echo "$line" | awk '{print $4+0}')
  if [ -z "$line" ]; then
    echo "FAIL $base: stopped (status $xrc) before its summary" >>"$note"
    f=$((f + 1))
  elif [ "$base" = suite ] && [ ! -e "$TMP/done" ]; then
    echo "FAIL suite: suite.escript stopped (status $xrc) before finishing" >>"$note"
    [ "$f" = 0 ] && f=1
  elif [ $xrc != 0 ] && [ "$f" = 0 ]; then
    echo "FAIL $base: exit status $xrc after its summary" >>"$note"
    f=1
  fi
  PASSED=$((PASSED + p))
  FAILED=$((FAILED + f))
  if [ -n "$QUEUE" ]; then
    { grep -v '^interop: [0-9]* passed' "$out"; cat "$note"; echo "== $base (lane $LANE): $p passed, $f failed, $secs s"; } \
      >"$TMP/$base.print"
    say "$TMP/$base.print"
  else
    cat "$note"
  fi
}

if [ -n "$QUEUE" ]; then
  # A lane: the next suite of the queue (the names sort longest first) until none is left; a rename is atomic,
  # so each suite goes to one lane. A heavy suite is taken only with the directory QUEUE/heavy made (mkdir is
  # atomic too), removed when it ends; while another lane has it, the next light suite is taken, or the lane
  # waits when only heavy ones are left.
  heavy() { case " ${INTEROP_HEAVY-term_suite tls_suite dirty_suite} " in *" $1 "*) true ;; *) false ;; esac; }
  while :; do
    base="" busy=""
    for f in $(ls "$QUEUE/todo" 2>/dev/null); do
      b=${f#*_}
      if heavy "$b" && ! mkdir "$QUEUE/heavy" 2>/dev/null; then busy=1; continue; fi
      if mv "$QUEUE/todo/$f" "$QUEUE/taken.$f" 2>/dev/null; then base=$b; break; fi
      heavy "$b" && rmdir "$QUEUE/heavy"
    done
    if [ -z "$base" ]; then
      [ -n "$busy" ] || break
      sleep 1
      continue
    fi
    run_suite "$base"
    heavy "$base" && rmdir "$QUEUE/heavy"
  done
  echo "interop lane $LANE: $PASSED passed, $FAILED failed" >"$TMP/end.print"
  say "$TMP/end.print"
  echo "$PASSED $FAILED" >"$QUEUE/result.$LANE"
else
  wanted suite && run_suite suite "$@"
  # The further suites, interop/*_suite.escript. (Selecting tests by name applies to suite.escript only.)
  if [ $# -eq 0 ]; then
    for extra in "$HERE"/*_suite.escript; do
      [ -e "$extra" ] || continue
      base=$(basename "$extra" .escript)
      wanted "$base" && run_suite "$base"
    done
  fi
  echo "interop: $PASSED passed, $FAILED failed"
fi
[ "$FAILED" = 0 ] && RC=0 || RC=1
exit $RC
