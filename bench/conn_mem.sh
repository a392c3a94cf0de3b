#!/bin/sh
# The "memory per idle connection" figure of bench/dist.sh alone (issue 23):
#   sh bench/conn_mem.sh BUILD [NCONN [RUNS]]
# Builds bench/cnode_bench.c and bench/conn_mem.c as dist.sh does (installed headers, libcnode.a, no allocator
# tuning), starts a private EPMD on a free port, and per run a fresh cnode_bench node (taskset -c 0) that
# bench/conn_mem.c opens NCONN hidden ei connections to; prints the target's VmRSS growth per connection.
set -u
BUILD=${1:-build}
NCONN=${2:-500}
RUNS=${3:-3}
SUB=conn_mem
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
build_plain cnode_bench
build_ei conn_mem
start_epmd
C=""
trap '[ -n "$C" ] && kill "$C" 2>/dev/null; kill "$EPMD_PID" 2>/dev/null' EXIT
trap 'exit 1' INT TERM
COOKIE=mem$$
H=127.0.0.1
i=0
while [ $i -lt "$RUNS" ]; do
  i=$((i + 1))
  : >"$OUT/c.log"
  $PIN ${MEM_WRAP:-} "$OUT/cnode_bench" "cm$$x$i@$H" "$COOKIE" >"$OUT/c.log" 2>&1 &
  C=$!
  wait_ready "$OUT/c.log" cnode_bench
  PORT=$(sed -n 's/^ready //p' "$OUT/c.log")
  $PIN "$OUT/conn_mem" $H "$PORT" "$COOKIE" "$NCONN" "$C"
  kill "$C" 2>/dev/null; wait "$C" 2>/dev/null; C=""
done
