#!/bin/sh
# bench/compute.sh BUILD: the sorted set and the dirty pool (issue 21), the C node (the `cnode` program) beside a
# BEAM node in the same run, both called the same way by a BEAM driver node (bench/compute_bench.erl).
# 1. Sorted set: cnode's `sorted_set` against a gen_server over an :ets ordered_set and one over :gb_trees
#    (what an Elixir developer would write instead) at 10k, 100k and 1M members: fill (add_many of 1000), add, rank,
#    range of 100 (calls/s, each timed figure bounded to SECS s), memory per member (cnode: RSS growth of its process;
#    BEAM: erlang:memory(total) growth after a GC). Every process pinned to CPU 0 (BENCHMARKING.md).
# 2. Dirty pool: echo round trips (p50/p99) while 0, 1 and 2 burns of 3 s run (cnode: {burn_job, Ms} on its dirty
#    pool; BEAM: a process per burn), 2 concurrent 1 s burns against one, and what a call to a dirty process costs
#    over a call to a plain one. Unpinned: the point is the second core.
# Prints `bench=<name> impl=<cnode|ets|gb|beam> value=<v> unit=<u>` lines, then a table with the ratios.
# BENCH_QUICK=1: 10k and 100k members, 1 s per timed figure. COMPUTE_ONLY=sset or dirty: that part alone.
set -eu
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
[ -x "$BUILD/cnode" ] || { echo "compute.sh: $BUILD/cnode not built (make all)"; exit 1; }
SIZES="10000 100000 1000000" SECS=3
[ -n "${BENCH_QUICK:-}" ] && SIZES="10000 100000" SECS=1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cnode-bench-compute.XXXXXX")
PIDS=
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  for p in $PIDS; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
PIN=
command -v taskset >/dev/null 2>&1 && taskset -c 0 true 2>/dev/null && PIN="taskset -c 0"
erlc -o "$TMP" "$HERE/compute_bench.erl"
PORT=$(erl -noshell -eval '{ok, S} = gen_tcp:listen(0, [{ip, {127,0,0,1}}]), {ok, P} = inet:port(S),
  io:format("~b~n", [P]), halt().')
COOKIE=computebench
"$BUILD/cnode-epmd" -port "$PORT" -address 127.0.0.1 >/dev/null 2>&1 &
PIDS="$PIDS $!"
export ERL_EPMD_PORT=$PORT
sleep 0.3
RES=$TMP/results

# A BEAM target node running compute_bench:serve(), and a C node; $1: the pin prefix (may be empty).
start_beam() {
  $1 erl -name cbt@127.0.0.1 -setcookie $COOKIE -pa "$TMP" -noinput -eval 'compute_bench:serve()' >"$TMP/beam.log" 2>&1 &
  BEAM=$!
  PIDS="$PIDS $BEAM"
  i=0
  until grep -q TARGET_READY "$TMP/beam.log"; do i=$((i + 1)); [ $i -lt 200 ] || exit 1; sleep 0.1; done
}
start_cnode() {
  $1 "$BUILD/cnode" --name cbc@127.0.0.1 --cookie $COOKIE --epmd-port "$PORT" --listen-addr 127.0.0.1 \
    >"$TMP/cnode.log" 2>&1 &
  CNODE=$!
  PIDS="$PIDS $CNODE"
  i=0
  until grep -q "ready" "$TMP/cnode.log"; do i=$((i + 1)); [ $i -lt 200 ] || exit 1; sleep 0.1; done
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
driver() {
  $1 erl -name cbd@127.0.0.1 -setcookie $COOKIE -pa "$TMP" -noinput -eval "$2, halt()." | tee -a "$RES"
}

ONLY=${COMPUTE_ONLY:-}
[ "$ONLY" = dirty ] && SIZES=
[ -n "$SIZES" ] && echo "== sorted set (${PIN:-unpinned}; sizes $SIZES; ${SECS} s per timed figure)"
[ -n "$SIZES" ] && start_beam "$PIN"
for n in $SIZES; do
  start_cnode "$PIN" # a fresh C node per size: its RSS growth is the set's alone
  driver "$PIN" "compute_bench:sset([$n], [
    {cnode, {sorted_set, 'cbc@127.0.0.1'}, fun() -> compute_bench:os_rss($CNODE) end},
    {ets, {ets_sset, 'cbt@127.0.0.1'}, fun() -> rpc:call('cbt@127.0.0.1', compute_bench, beam_mem, []) end},
    {gb, {gb_sset, 'cbt@127.0.0.1'}, fun() -> rpc:call('cbt@127.0.0.1', compute_bench, beam_mem, []) end}], $SECS)"
  stop "$CNODE"
done
[ -n "$SIZES" ] && stop "$BEAM"

if [ "$ONLY" != sset ]; then
  echo "== dirty pool (unpinned, $(nproc) cores)"
  start_beam ""
  start_cnode ""
  driver "" "compute_bench:dirty(cnode, 'cbc@127.0.0.1'), compute_bench:dirty(beam, 'cbt@127.0.0.1')"
  stop "$CNODE"
  stop "$BEAM"
fi

awk '
function v(b, i) { return val[b "|" i] }
/^bench=/ {
  split($0, kv, " ")
  for (k in kv) { split(kv[k], p, "="); f[p[1]] = p[2] }
  b = f["bench"]; val[b "|" f["impl"]] = f["value"]
  if (!(b in seen)) { seen[b] = 1; order[++n] = b; unit[b] = substr($0, index($0, "unit=") + 5) }
}
END {
  printf "\n%-22s %12s %12s %12s %9s %9s  %s\n", "bench", "cnode", "ets|beam", "gb", "c/ets", "c/gb", "unit"
  for (k = 1; k <= n; k++) {
    b = order[k]; c = v(b, "cnode"); e = v(b, "ets"); if (e == "") e = v(b, "beam"); g = v(b, "gb")
    re = (c != "" && e != "" && e + 0 != 0) ? sprintf("%.2f", c / e) : "-"
    rg = (c != "" && g != "" && g + 0 != 0) ? sprintf("%.2f", c / g) : "-"
    printf "%-22s %12s %12s %12s %9s %9s  %s\n", b, c == "" ? "-" : c, e == "" ? "-" : e, g == "" ? "-" : g, re, rg, unit[b]
  }
  print "(c/ets, c/gb: cnode over the BEAM figure; above 1 is better for calls/s and members/s, below 1 for bytes, us and ms)"
}' "$RES"
