#!/bin/sh
# Runs make targets ("phases") in concurrent lanes: `sh test/lanes.sh LOGDIR LANE...` (what `make test` runs).
# Each LANE is one quoted, space-separated list of phases, run in turn with `$MAKE --no-print-directory PHASE`;
# the lanes run side by side, each in a process group of its own. A lane stops at its first failing phase (its
# later phases are "not run"). A word `after=PHASE` in a lane waits until PHASE (of another lane) has ended, and
# stops the lane unless PHASE passed: the way a lane waits for a build another lane makes. A phase written
# `nice:PHASE` runs at nice 10 (builds and static analysis: the tests beside them, some timing-sensitive, get
# the CPU first, and the compilers take what is left).
#
# Output: each phase writes to LOGDIR/PHASE.log; this script alone prints, one line when a phase starts and the
# whole log when it ends (then `== PHASE: ok (N s)` or `== PHASE: FAILED (N s)`), so lanes never interleave.
# Last, a table of every phase (lane, seconds, result) and one closing line naming the phases that failed; the
# exit status is non-zero if any phase failed or did not run. INT/TERM/HUP: every lane's process group gets
# SIGTERM (run.sh and the other runners stop what they started), then SIGKILL after LANES_GRACE (15) seconds.
set -u

# ---- one lane: `lanes.sh --lane LOGDIR "PHASE..."`, started by the part below --------------------------------
if [ "${1:-}" = "--lane" ]; then
  LOGDIR=$2
  stop=""
  for p in $3; do
    case $p in
      after=*)
        [ -n "$stop" ] && continue
        dep=${p#after=}
        until [ -e "$LOGDIR/$dep.rc" ]; do sleep 1; done
        [ "$(cat "$LOGDIR/$dep.rc")" = 0 ] || stop="after $dep"
        ;;
      *)
        nice=""
        case $p in nice:*) p=${p#nice:} nice="nice -n 10" ;; esac
        if [ -n "$stop" ]; then
          echo "not run ($stop)" >"$LOGDIR/$p.log"
          echo skip >"$LOGDIR/$p.rc.new" && mv "$LOGDIR/$p.rc.new" "$LOGDIR/$p.rc"
          continue
        fi
        date +%s >"$LOGDIR/$p.start"
        $nice $MAKE --no-print-directory "$p" >"$LOGDIR/$p.log" 2>&1 </dev/null
        rc=$?
        date +%s >"$LOGDIR/$p.end"
        echo $rc >"$LOGDIR/$p.rc.new" && mv "$LOGDIR/$p.rc.new" "$LOGDIR/$p.rc"
        [ $rc = 0 ] || stop="$p failed"
        ;;
    esac
  done
  exit 0
fi

# ---- the lanes ----------------------------------------------------------------------------------------------
LOGDIR=$1
shift
MAKE=${MAKE:-make}
export MAKE
rm -rf "$LOGDIR"
mkdir -p "$LOGDIR" || exit 1
T0=$(date +%s)
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

PHASES=""  # every phase, in lane order, with its lane number: "phase:lane ..."
PIDS=""
SHOWN=" "  # events already printed: " phase.start phase.rc "
n=0
for lane in "$@"; do
  n=$((n + 1))
  for p in $lane; do
    case $p in after=*) ;; *) PHASES="$PHASES ${p#nice:}:$n" ;; esac
  done
done

# An `after=` naming no phase of the lanes would wait for ever.
for lane in "$@"; do
  for p in $lane; do
    case $p in after=*)
      case "$PHASES " in *" ${p#after=}:"*) ;; *) echo "lanes: $p: no such phase in the lanes"; exit 2 ;; esac ;;
    esac
  done
done

# Prints what happened since the last call: starts, and the log of each phase that ended.
show() {
  for e in $PHASES; do
    p=${e%:*} l=${e##*:}
    if [ -e "$LOGDIR/$p.start" ]; then
      case $SHOWN in *" $p.start "*) ;; *)
        echo "== $p started (lane $l, $(($(cat "$LOGDIR/$p.start") - T0)) s; log $LOGDIR/$p.log)"
        SHOWN="$SHOWN$p.start " ;;
      esac
    fi
    if [ -e "$LOGDIR/$p.rc" ]; then
      case $SHOWN in *" $p.rc "*) ;; *)
        rc=$(cat "$LOGDIR/$p.rc")
        if [ "$rc" = skip ]; then
          echo "== $p: $(cat "$LOGDIR/$p.log")"
        else
          echo "== $p (lane $l) output:"
          cat "$LOGDIR/$p.log"
          secs=$(($(cat "$LOGDIR/$p.end") - $(cat "$LOGDIR/$p.start")))
          if [ "$rc" = 0 ]; then echo "== $p: ok ($secs s)"; else echo "== $p: FAILED (status $rc, $secs s)"; fi
        fi
        SHOWN="$SHOWN$p.rc " ;;
      esac
    fi
  done
}

# The table and the closing line; returns non-zero if a phase failed or did not run.
finish() {
  show
  for e in $PHASES; do # what the phases stopped by a signal had written
    p=${e%:*}
    [ -e "$LOGDIR/$p.start" ] && [ ! -e "$LOGDIR/$p.rc" ] && { echo "== $p (interrupted) output:"; cat "$LOGDIR/$p.log"; }
  done
  failed="" notrun=""
  echo "== phases (lane, seconds, result):"
  for e in $PHASES; do
    p=${e%:*} l=${e##*:}
    rc=$(cat "$LOGDIR/$p.rc" 2>/dev/null)
    secs=""
    [ -e "$LOGDIR/$p.start" ] && secs=$(($(cat "$LOGDIR/$p.end" 2>/dev/null || date +%s) - $(cat "$LOGDIR/$p.start")))
    case $rc in
      0) r=ok ;;
      skip) r="not run"; notrun="$notrun $p" ;;
      "") if [ -e "$LOGDIR/$p.start" ]; then r="interrupted"; failed="$failed $p"; else r="not run"; notrun="$notrun $p"; fi ;;
      *) r="FAILED"; failed="$failed $p" ;;
    esac
    printf '   %-16s lane %s %6s s  %s\n' "$p" "$l" "${secs:--}" "$r"
  done
  total=$(($(date +%s) - T0))
  if [ -z "$failed$notrun" ]; then
    echo "== all $(echo $PHASES | wc -w) phases passed in $total s"
    return 0
  fi
  [ -n "$failed" ] && echo "== FAILED:$failed (logs in $LOGDIR)"
  [ -n "$notrun" ] && echo "== not run:$notrun"
  echo "== $total s"
  return 1
}

interrupted() {
  trap - INT TERM HUP
  echo "== interrupted: stopping the lanes"
  for pid in $PIDS; do kill -TERM -"$pid" 2>/dev/null; done
  i=0
  while [ $i -lt $((${LANES_GRACE:-15} * 5)) ]; do
    alive=""
    for pid in $PIDS; do kill -0 -"$pid" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.2
    i=$((i + 1))
  done
  for pid in $PIDS; do kill -KILL -"$pid" 2>/dev/null; done
  finish
}
trap 'interrupted; exit 130' INT
trap 'interrupted; exit 143' TERM HUP

n=0
for lane in "$@"; do
  n=$((n + 1))
  echo "== lane $n: $lane"
  # setsid: the lane's own process group, so it can be stopped whole (and a background job's ignored SIGINT
  # does not matter: it is stopped by SIGTERM).
  setsid sh "$SELF" --lane "$LOGDIR" "$lane" </dev/null >"$LOGDIR/lane$n.out" 2>&1 &
  PIDS="$PIDS $!"
done

while :; do
  alive=""
  for pid in $PIDS; do kill -0 "$pid" 2>/dev/null && alive=1; done
  show
  [ -z "$alive" ] && break
  sleep 1
done
for pid in $PIDS; do wait "$pid"; done
finish
exit $?
