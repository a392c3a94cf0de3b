#!/bin/sh
# Runs each libFuzzer target for a while on its corpus and the committed seeds, then prints one line per
# target (execs, execs/s, new corpus units, crashes) and exits non-zero if any target crashed.
# Usage: fuzz/run.sh BUILD_DIR SECONDS TARGET...
build=$1; secs=$2; shift 2
status=0
summary=""
for t in "$@"; do
  bin="$build/$t"
  corpus="$build/corpus/$t"
  arts="$build/artifacts/$t"
  log="$build/logs/$t.log"
  mkdir -p "$corpus" "$arts" "$build/logs"
  seeds="fuzz/seeds/$t"
  [ -d "$seeds" ] || seeds=""
  dict=""
  [ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
  before=$(ls "$arts" | wc -l)
  echo "== $t: ${secs}s (log $log)"
  # New inputs are written to the first folder only, so the committed seeds are never touched.
  "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$arts/" $dict "$corpus" $seeds >"$log" 2>&1
  rc=$?
  after=$(ls "$arts" | wc -l)
  crashes=$((after - before))
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
done
echo "== fuzz summary (${secs}s per target)"
printf '%s' "$summary"
exit $status
