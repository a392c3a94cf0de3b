# interop/runner_lib.sh: sourced by the test runners (interop/run.sh, interop/soak/run.sh). Their escripts record each
# process they start in a pid file, "+PID name" when started and "-PID ..." once they have seen it exit.

# new_run_dir PREFIX: a fresh log directory TMP (under TMPDIR) with an empty pid file PIDFILE; no escript (SUITE_PID)
# or epmd (EPMD_PID) started yet.
new_run_dir() {
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
  PIDFILE=$TMP/pids
  : >"$PIDFILE"
  EPMD_PID= SUITE_PID=
}

# kill_recorded FILE: kills (-9) every pid recorded started and not recorded exited.
kill_recorded() {
  [ -s "$1" ] || return 0
  for p in $(awk '$1 ~ /^\+/ { live[substr($1,2)] = 1 } $1 ~ /^-/ { delete live[substr($1,2)] }
                  END { for (p in live) print p }' "$1"); do
    kill -9 "$p" 2>/dev/null
  done
}

# stop_started PIDFILE SUITE_PID EPMD_PID: kills the runner's escript, every recorded pid, then its epmd (reaped);
# an empty SUITE_PID or EPMD_PID is skipped. A SUITE_PID that is `timeout` leads a process group of its own (the
# escript and the nodes it runs as ports): the group is killed whole, so none of them starts another process
# after the pid file was read.
stop_started() {
  [ -n "$2" ] && { kill -9 -"$2" 2>/dev/null; kill -9 "$2" 2>/dev/null; }
  kill_recorded "$1"
  [ -n "$3" ] && kill -9 "$3" 2>/dev/null && wait "$3" 2>/dev/null
}
