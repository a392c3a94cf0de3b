#!/bin/sh
# Runs each cmocka test binary as its own process with a timeout, then prints one closing line.
# UNIT_JOBS (default 2) binaries run at a time; each one's output is printed whole when it ends, in the order
# they end. UNIT_JOBS=1 runs them in turn with their output as it comes.
passed=0; failed=0
jobs=${UNIT_JOBS:-2}
if [ "$jobs" -le 1 ] 2>/dev/null; then
  for t in "$@"; do
    if timeout 300 "$t"; then passed=$((passed + 1)); else echo "FAILED: $t"; failed=$((failed + 1)); fi
  done
  echo "unit binaries: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cnode-unit.XXXXXX")
RUNNING="" # "pid:index ..."
stop() {
  trap - INT TERM HUP
  for r in $RUNNING; do kill -TERM "${r%:*}" 2>/dev/null; done
  for r in $RUNNING; do wait "${r%:*}" 2>/dev/null; done
  rm -rf "$TMP"
  echo "unit binaries: $passed passed, $((failed + 1)) failed (interrupted)"
  exit "$1"
}
trap 'stop 130' INT
trap 'stop 143' TERM HUP

# Waits for one of the running binaries to end, prints its output and counts it.
reap() {
  while :; do
    for r in $RUNNING; do
      pid=${r%:*}
      kill -0 "$pid" 2>/dev/null && continue
      wait "$pid"
      rc=$?
      i=${r#*:}
      eval "t=\$bin_$i"
      cat "$TMP/$i.out"
      if [ "$rc" = 0 ]; then passed=$((passed + 1)); else echo "FAILED: $t (status $rc)"; failed=$((failed + 1)); fi
      RUNNING=$(echo " $RUNNING " | sed "s/ $r / /")
      return
    done
    sleep 0.1
  done
}

i=0
for t in "$@"; do
  i=$((i + 1))
  eval "bin_$i=\$t"
  [ "$(echo $RUNNING | wc -w)" -ge "$jobs" ] && reap
  timeout 300 "$t" >"$TMP/$i.out" 2>&1 </dev/null &
  RUNNING="$RUNNING $!:$i"
done
while [ -n "$(echo $RUNNING)" ]; do reap; done
rm -rf "$TMP"
echo "unit binaries: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
