#!/bin/sh
# delta_crdt peer: time, bytes and messages for 10,000 and 100,000 keys to converge between two C nodes, and the
# CPU of an idle sync round (roots equal). `sh bench/crdt.sh BUILD`; BENCH_QUICK=1 runs 10,000 keys only.
set -eu
BUILD=${1:-build}
EI=$(ls -d /usr/lib/erlang/lib/erl_interface-* | head -n 1)
OUT=$BUILD/bench/crdt
mkdir -p "$OUT"
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Ibase -Iterm -Iepmd -Idist -Icnode -Iotp -Ihorde_compat \
  -o "$OUT/crdt_bench" bench/crdt_bench.c "$BUILD/libcnode.a" -L"$EI/lib" -lei -luv -lssl -lcrypto -lpthread -lm
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
       echo 47369)
"$BUILD/cnode-epmd" -port "$PORT" -address 127.0.0.1 >/dev/null 2>&1 &
EPMD=$!
trap 'kill $EPMD 2>/dev/null; wait $EPMD 2>/dev/null || true' EXIT
sleep 0.3
SIZES="10000 100000"
[ -n "${BENCH_QUICK:-}" ] && SIZES=10000
for n in $SIZES; do taskset -c 0 "$OUT/crdt_bench" "$PORT" "$n"; done
