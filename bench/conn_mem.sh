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
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
OUT=$BUILD/bench/conn_mem
LIB=$BUILD/libcnode.a
[ -f "$LIB" ] || { echo "bench/conn_mem.sh: $LIB not built (make all)"; exit 1; }
EI_DIR=$(ls -d /usr/lib/erlang/lib/erl_interface-* 2>/dev/null | head -n 1)
CC=${CC:-cc}
mkdir -p "$OUT/include/cnode"
for h in base/cn_base.h term/cn_term.h dist/cn_tls.h cnode/cnode.h otp/cn_global.h; do cp "$ROOT/$h" "$OUT/include/cnode/" || exit 1; done
CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O2 -I$EI_DIR/include"
LDLIBS="-L$EI_DIR/lib -lei -luv -lssl -lcrypto -lpthread -lm"
$CC $CFLAGS -I"$OUT/include/cnode" -o "$OUT/cnode_bench" "$HERE/cnode_bench.c" "$LIB" $LDLIBS || exit 1
$CC $CFLAGS -o "$OUT/conn_mem" "$HERE/conn_mem.c" $LDLIBS || exit 1
PIN=""
command -v taskset >/dev/null 2>&1 && PIN="taskset -c 0"
ERL_EPMD_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export ERL_EPMD_PORT
epmd -port "$ERL_EPMD_PORT" -address 127.0.0.1 >/dev/null 2>&1 &
EPMD_PID=$!
C=""
trap '[ -n "$C" ] && kill "$C" 2>/dev/null; kill "$EPMD_PID" 2>/dev/null' EXIT
trap 'exit 1' INT TERM
sleep 0.3
COOKIE=mem$$
H=127.0.0.1
i=0
while [ $i -lt "$RUNS" ]; do
  i=$((i + 1))
  : >"$OUT/c.log"
  $PIN ${MEM_WRAP:-} "$OUT/cnode_bench" "cm$$x$i@$H" "$COOKIE" >"$OUT/c.log" 2>&1 &
  C=$!
  j=0
  until grep -q '^ready' "$OUT/c.log" 2>/dev/null; do
    j=$((j + 1)); [ $j -gt 300 ] && { echo "bench/conn_mem.sh: cnode_bench did not start"; cat "$OUT/c.log"; exit 1; }
    sleep 0.1
  done
  PORT=$(sed -n 's/^ready //p' "$OUT/c.log")
  $PIN "$OUT/conn_mem" $H "$PORT" "$COOKIE" "$NCONN" "$C"
  kill "$C" 2>/dev/null; wait "$C" 2>/dev/null; C=""
done
