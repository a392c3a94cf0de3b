#!/bin/sh
# Distribution benchmarks (issue 7): cnode side by side with a BEAM pair and a blocking-ei C node, in one run.
#
#   sh bench/dist.sh BUILD        (make bench; BENCH_QUICK=1 / make bench-quick: a short run, < 2 minutes)
#
# Nodes on loopback, a private EPMD: a driver BEAM node d runs every workload (bench/beam_bench.erl) against
#   beam  a second BEAM node (beam_bench:target/0)              -> `impl=beam` rows are BEAM<->BEAM
#   ei    bench/ei_node.c, erl_interface's blocking API (e; e2 for ei->ei) -> `impl=ei`, and *_e2e rows
#   cnode bench/cnode_bench.c on libcnode (c1; c2 for cnode->cnode)      -> `impl=cnode`, and *_c2c rows
# Workloads rotate between implementations every repetition and each figure is the median of BENCH_REPS runs
# (after a warm-up), so machine drift hits all of them alike. As /work/shared/BENCHMARKING.md advises, the
# comparison figures are pinned (every process `taskset -c 0`); small-message throughput and ping-pong are
# measured unpinned too (names ending in _unpinned). Directions: b2x = driver BEAM -> implementation,
# x2b = implementation -> driver BEAM, c2c = cnode c1 -> cnode c2, e2e = ei node e -> ei node e2 (the driver
# asks the first node's ctl to send to {sink, SecondNode} and times it to the second sink's answer; CPU rows
# count both processes).
#
# How to read the two kinds of comparison with the ei node: b2x/x2b rows (`ratio_ei` on them, targets
# 2x_ei_<workload>_b2x|x2b) put a BEAM node at the other end; pinned, that peer shares the one CPU and its own
# cost caps both C nodes, so those ratios stay near 1 whatever the C side does: read them as information (and
# read cpu_per_Mmsg). The *_c2c rows have `ratio_ei` = cnode->cnode / ei->ei (the *_e2e row of the same
# workload), both libraries at both ends and no BEAM in the way: targets 2x_ei_<workload>_c2c_vs_e2e are the
# "cnode >= 2x the ei node on throughput" comparison. The c2c `ratio` (against BEAM->BEAM b2x) is unchanged.
#
# Output: per figure `bench=<name> impl=<impl> value=<v> unit=<u> runs=<...>`; per comparison
# `bench=<name> ratio=<cnode/beam>` and `bench=<name> ratio_ei=<cnode/ei>` (for *_c2c: cnode c2c / ei e2e); a
# table; `target=... PASS|FAIL` lines for the targets of issue 7. All lines also go to
# BUILD/bench/dist/results.txt.
set -u
BUILD=${1:-build}
SUB=dist
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
command -v erl >/dev/null 2>&1 || { echo "bench/dist.sh: erl not found"; exit 1; }

if [ -n "${BENCH_QUICK:-}" ]; then QUICK=1; REPS=${BENCH_REPS:-3}; NCONN=200; NPROC=1000000
else QUICK=0; REPS=${BENCH_REPS:-5}; NCONN=500; NPROC=1000000; fi

# ---- build the helpers (bench/lib.sh) -------------------------------------------------------------
# The cnode programs are plain programs on the public API, as a user builds them: only the installed headers (staged
# here the way `make install` lays them out) and the library, no allocator tuning. BENCH_TUNED=1 runs them with
# glibc tuned as the project's programs once were (mmap threshold 32 MiB, trim threshold 256 MiB, through
# GLIBC_TUNABLES), to show the tuning no longer matters.
build_plain cnode_bench cnode_mem
CN_ENV=""
[ -n "${BENCH_TUNED:-}" ] && CN_ENV="env GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456"
build_ei ei_node conn_mem raw_pair
erlc -o "$OUT" "$HERE/beam_bench.erl" || exit 1

PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; PIDS=""; }
trap 'cleanup; exit 1' INT TERM
trap cleanup EXIT

start_epmd
trap 'cleanup; kill $EPMD_PID 2>/dev/null; exit 1' INT TERM
trap 'cleanup; kill $EPMD_PID 2>/dev/null' EXIT
COOKIE=bench$$$(date +%s)
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
export CLK_TCK
RES=$OUT/results.txt
: >"$RES"
ERLOPTS="-noshell -noinput -setcookie $COOKIE -connect_all false -kernel net_ticktime 60 -pa $OUT"
H=127.0.0.1

wait_epmd() { # alive
  i=0
  until epmd -port "$ERL_EPMD_PORT" -names 2>/dev/null | grep -q "name $1 "; do
    i=$((i + 1)); [ $i -gt 150 ] && { echo "bench/dist.sh: node $1 did not start"; exit 1; }; sleep 0.1
  done
}

# One phase: fresh target nodes under the placement PIN, then the driver.
phase() { # name pin
  PIN=$2; sfx=$1$$
  NODE_PIDS=""
  $PIN erl $ERLOPTS -name "t$sfx@$H" -eval 'beam_bench:target()' >"$OUT/t.log" 2>&1 &
  NODE_PIDS="$NODE_PIDS $!"
  $PIN "$OUT/ei_node" "e$sfx" $H "$COOKIE" single >"$OUT/e.log" 2>&1 &
  NODE_PIDS="$NODE_PIDS $!"
  $PIN "$OUT/ei_node" "e2$sfx" $H "$COOKIE" >"$OUT/e2.log" 2>&1 &
  NODE_PIDS="$NODE_PIDS $!"
  $PIN $CN_ENV "$OUT/cnode_bench" "c1$sfx@$H" "$COOKIE" >"$OUT/c1.log" 2>&1 &
  NODE_PIDS="$NODE_PIDS $!"
  $PIN $CN_ENV "$OUT/cnode_bench" "c2$sfx@$H" "$COOKIE" >"$OUT/c2.log" 2>&1 &
  NODE_PIDS="$NODE_PIDS $!"
  PIDS="$PIDS $NODE_PIDS"
  wait_ready "$OUT/e.log" ei_node; wait_ready "$OUT/e2.log" ei_node
  wait_ready "$OUT/c1.log" cnode_bench; wait_ready "$OUT/c2.log" cnode_bench
  wait_epmd "t$sfx"
  echo "-- phase $1 (${PIN:-unpinned}), $REPS repetitions"
  $PIN erl $ERLOPTS -name "d$sfx@$H" -run beam_bench main "$1" $QUICK "$REPS" \
    "t$sfx@$H" "e$sfx@$H" "e2$sfx@$H" "c1$sfx@$H" "c2$sfx@$H" "$RES" || { echo "bench/dist.sh: driver failed"; exit 1; }
  for p in $NODE_PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
}

# The loopback figure for the large payloads: bench/raw_pair.c moves the same bytes in the same frames (4-byte length,
# one writev a frame, one buffer read a frame) with no library and no terms, pinned like the comparison figures.
raw_bound() { # under the last phase's placement $PIN
  L=4; [ "$QUICK" = 1 ] && L=1
  for x in "4K 4096 $((25000 * L))" "64K 65536 $((3000 * L))" "1M 1048576 $((200 * L))" "8M 8388608 $((25 * L))"; do
    set -- $x
    $PIN "$OUT/raw_pair" recv >"$OUT/raw.log" 2>&1 &
    RP=$!; PIDS="$PIDS $RP"
    i=0; until grep -q '^port ' "$OUT/raw.log"; do i=$((i + 1)); [ $i -gt 50 ] && break; sleep 0.1; done
    m=$($PIN "$OUT/raw_pair" send "$(sed -n 's/^port //p' "$OUT/raw.log")" "$2" "$3" "$REPS" | sed -n 's/^median //p')
    wait "$RP" 2>/dev/null
    [ -n "$m" ] && echo "bench=bin${1}_raw impl=raw value=$m unit=MB/s runs=$REPS" >>"$RES"
  done
}

T_START=$(date +%s)
if command -v taskset >/dev/null 2>&1; then phase pinned "taskset -c 0"; else echo "(no taskset: pinned phase unpinned)"; phase pinned ""; fi
echo "-- loopback figure (raw_pair, ${PIN:-unpinned})"
raw_bound
phase unpinned ""

# ---- memory: idle C processes, idle connections (fresh nodes, so freed buffers are not reused) -----------
# mem_per_conn alone, several runs, same programs and method: sh bench/conn_mem.sh BUILD [NCONN [RUNS]]. The
# figure is RSS growth over NCONN connections made 1 s before: it counts what a connection's setup leaves for
# a while too (the OTP-release rpc to each new peer, 10 s; write buffers until the first idle tick) and any
# one-time cost the first connection triggers (OpenSSL's initialisation was ~2.2 MiB, 4.5 KB a connection at 500).
echo "-- memory"
r=$("$OUT/cnode_mem" $NPROC) || exit 1
echo "$r"
echo "bench=mem_per_proc impl=cnode value=$(echo "$r" | sed 's/.*bytes_per_proc=//') unit=bytes runs=$NPROC" >>"$RES"
erl $ERLOPTS -name "m$$@$H" -eval 'beam_bench:proc_mem(100000, "'"$RES"'"), halt().' || exit 1

$CN_ENV "$OUT/cnode_bench" "c3$$@$H" "$COOKIE" >"$OUT/c3.log" 2>&1 &
C3=$!; PIDS="$PIDS $C3"
erl $ERLOPTS -name "t3$$@$H" -eval 'beam_bench:target()' >"$OUT/t3.log" 2>&1 &
T3=$!; PIDS="$PIDS $T3"
wait_ready "$OUT/c3.log" cnode_bench; wait_epmd "t3$$"
C3PORT=$(sed -n 's/^ready //p' "$OUT/c3.log")
T3PORT=$(epmd -port "$ERL_EPMD_PORT" -names | sed -n "s/^name t3$$ at port //p")
for x in "cnode $C3PORT $C3" "beam $T3PORT $T3"; do
  set -- $x
  r=$("$OUT/conn_mem" $H "$2" "$COOKIE" $NCONN "$3") || echo "conn_mem against $1: some connections failed: $r"
  echo "$1: $r"
  echo "bench=mem_per_conn impl=$1 value=$(echo "$r" | sed 's/.*bytes_per_conn=//') unit=bytes runs=$NCONN" >>"$RES"
done
cleanup
kill "$EPMD_PID" 2>/dev/null; wait "$EPMD_PID" 2>/dev/null
T_END=$(date +%s)

# ---- ratios, table, targets ---------------------------------------------------------------------------------
awk -v secs=$((T_END - T_START)) -v quick=$QUICK -v reps=$REPS '
function val(b, i) { return ((b SUBSEP i) in v) ? v[b, i] : "" }
function ratio(x, y) { return (x != "" && y != "" && y + 0 > 0) ? x / y : "" }
function f(x) { return x == "" ? "-" : (x + 0 >= 100 ? sprintf("%.0f", x) : sprintf("%.2f", x)) }
/^bench=/ {
  split("", kv)
  for (i = 1; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
  b = kv["bench"]; if (!(b in seen)) { seen[b] = 1; order[++n] = b }
  v[b, kv["impl"]] = kv["value"]; unit[b] = kv["unit"]
}
END {
  # a cnode->cnode row compares with the BEAM->BEAM row of the same workload (ratio) and with the ei->ei row
  # of the same workload (ratio_ei); an ei->ei row has no ratio of its own
  for (k = 1; k <= n; k++) {
    b = order[k]
    base = b; sub(/_c2c/, "_b2x", base)
    if (b ~ /_c2c/ && b !~ /^pingpong/) { r[b] = ratio(val(b, "cnode"), val(base, "beam")) }
    else if (b ~ /^pingpong_c2c/) { base = b; sub(/_c2c/, "", base); r[b] = ratio(val(b, "cnode"), val(base, "beam")) }
    else { r[b] = ratio(val(b, "cnode"), val(b, "beam")); re[b] = ratio(val(b, "cnode"), val(b, "ei")) }
    if (b ~ /_c2c/) { eb = b; sub(/_c2c/, "_e2e", eb); re[b] = ratio(val(b, "cnode"), val(eb, "ei")) }
  }
  printf "\n%-30s %12s %12s %12s %9s %9s  %s\n", "bench", "beam", "ei", "cnode", "c/beam", "c/ei", "unit"
  for (k = 1; k <= n; k++) {
    b = order[k]
    if (b ~ /_raw$/) { printf "%-30s %12s %12s %12s %9s %9s  %s\n", b, "-", "-", "-", "-", "-", unit[b] ": " f(val(b, "raw")) " with no library (raw_pair)"; continue }
    printf "%-30s %12s %12s %12s %9s %9s  %s\n", b, f(val(b, "beam")), f(val(b, "ei")), f(val(b, "cnode")), f(r[b]), f(re[b]), unit[b]
  }
  printf "(%s run, %d repetitions, medians; %d s; b2x = BEAM->impl, x2b = impl->BEAM, c2c = cnode->cnode: c/beam vs\n", quick ? "quick" : "full", reps, secs
  printf " BEAM->BEAM b2x, c/ei vs the e2e row (ei->ei); pinned = all processes on CPU 0 unless the name ends in _unpinned;\n"
  printf " pingpong, cpu and rss ratios < 1 are better; b2x/x2b c/ei have a BEAM peer sharing the CPU: c2c vs e2e is the\n"
  printf " library-to-library comparison)\n\n"
  for (k = 1; k <= n; k++) {
    b = order[k]
    if (r[b] != "") printf "bench=%s ratio=%.2f\n", b, r[b]
    if (re[b] != "") printf "bench=%s ratio_ei=%.2f\n", b, re[b]
  }
  print ""
  # targets of issue 23 (pinned figures, ratios within this run)
  tgt("b2x_small_1x_beam", r["small_b2x"], 1, 1)
  tgt("b2x_bin4K_1x_ei", re["bin4K_b2x"], 1, 1)
  tgt("b2x_bin64K_1x_ei", re["bin64K_b2x"], 1, 1)
  tgt("pingpong_p50_le_ei", re["pingpong_p50"], 1, 0)
  tgt("c2c_vs_e2e_bin1M_1x", re["bin1M_c2c"], 1, 1)
  tgt("c2c_vs_e2e_bin8M_1x", re["bin8M_c2c"], 1, 1)
  for (i = 1; i <= 2; i++) {
    w = i == 1 ? "bin1M" : "bin8M"
    raw = val(w "_raw", "raw"); e2 = val(w "_e2e", "ei")
    if (raw != "" && e2 != "") printf "  (%s: e2e %s MB/s; the same bytes and frames with no library: %s MB/s)\n", w, f(e2), f(raw)
  }
  tgt("gencall_120_1x_beam", r["gencall_120"], 1, 1)
  tgt("mem_per_proc_le_512B", val("mem_per_proc", "cnode"), 512, 0)
  tgt("mem_per_conn_le_8KiB", val("mem_per_conn", "cnode"), 8192, 0)
  printf "targets: %d pass, %d fail\n", npass, nfail
}
function tgt(name, x, bound, ge) {
  if (x == "") { printf "target=%s value=- FAIL (not measured)\n", name; nfail++; return }
  ok = ge ? (x + 0 >= bound) : (x + 0 <= bound)
  printf "target=%s value=%s bound=%s%s %s\n", name, f(x), ge ? ">=" : "<=", bound, ok ? "PASS" : "FAIL"
  if (ok) npass++; else nfail++
}' "$RES" | tee "$OUT/summary.txt"
# the summary's machine lines go to the results file as well
grep -E '^(bench=.*ratio|target=)' "$OUT/summary.txt" >>"$RES"
exit 0
