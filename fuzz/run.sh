#!/bin/sh
# Runs each libFuzzer target for a while on its corpus and the committed seeds, then prints one line per
# target (execs, execs/s, new corpus units, crashes) and exits non-zero if any target crashed.
# Usage: fuzz/run.sh BUILD_DIR SECONDS TARGET...
# FUZZ_JOBS (default 2) targets run at a time, each a single process for SECONDS (so each gets one CPU of the
# two, as when they ran in turn); the lines are printed in the targets' order once a batch has ended.
build=$1; secs=$2; shift 2
jobs=${FUZZ_JOBS:-2}
status=0
summary=""
PIDS=""
trap 'for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done; exit 130' INT
trap 'for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done; exit 143' TERM HUP

# start TARGET: runs it in the background (its pid in PIDS); the counting is done by report.
start() {
  t=$1
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t" "$build/logs"
  seeds="fuzz/seeds/$t"
  [ -d "$seeds" ] || seeds=""
  dict=""
  [ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
  ls "$build/artifacts/$t" | wc -l >"$build/logs/$t.before"
  echo "== $t: ${secs}s (log $build/logs/$t.log)"
  # New inputs are written to the first folder only, so the committed seeds are never touched.
  "$build/$t" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$build/artifacts/$t/" $dict "$build/corpus/$t" $seeds >"$build/logs/$t.log" 2>&1 &
  PIDS="$PIDS $!"
  eval "pid_$(echo "$t" | tr -c 'a-z0-9_\n' _)=\$!"
}

# report TARGET: waits for it and prints its line.
report() {
  t=$1
  arts="$build/artifacts/$t"
  log="$build/logs/$t.log"
  eval "wait \$pid_$(echo "$t" | tr -c 'a-z0-9_\n' _)"
  rc=$?
  after=$(ls "$arts" | wc -l)
  crashes=$((after - $(cat "$build/logs/$t.before")))
  [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ] && crashes=1 # died without writing an input (see the log)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  units=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
  line=$(printf '%-16s execs %10s  execs/s %7s  new units %5s  crashes %d' "$t" "${execs:-?}" "${rate:-?}" \
    "${units:-?}" "$crashes")
  echo "$line"
  summary="$summary$line
"
  if [ "$crashes" -ne 0 ]; then
    status=1
    grep -m 3 -E 'ERROR|invariant failed|SUMMARY' "$log"
    ls -t "$arts" | head -n 3 | sed "s|^|  input: $arts/|"
  fi
}

while [ $# -gt 0 ]; do
  batch=""
  PIDS=""
  while [ $# -gt 0 ] && [ "$(echo $batch | wc -w)" -lt "$jobs" ]; do
    start "$1"
    batch="$batch $1"
    shift
  done
  for t in $batch; do report "$t"; done
done
PIDS=""
echo "== fuzz summary (${secs}s per target, $jobs at a time)"
printf '%s' "$summary"
exit $status
