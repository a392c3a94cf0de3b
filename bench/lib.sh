# bench/lib.sh: what the bench scripts share. A script sets BUILD (its first argument) and SUB (its folder under
# BUILD/bench), then sources this file, which sets HERE, ROOT, OUT (made), LIB (checked: libcnode.a is built),
# EI_DIR, CC, CFLAGS, LDLIBS and PIN (`taskset -c 0` when there is taskset), stages the public headers in
# OUT/include/cnode as `make install` lays them out, and defines:
#   build_plain PROG...  bench/PROG.c as a user builds it: the installed headers and libcnode.a, no allocator tuning
#   build_ei PROG...     bench/PROG.c on erl_interface alone (no libcnode)
#   free_port            a free TCP port on loopback
#   start_epmd           a private EPMD on a free port: ERL_EPMD_PORT (exported) and EPMD_PID; the script stops it
#   wait_ready FILE WHAT until a program's log FILE has its "ready" line (30 s at most; else its log, and exit 1)
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
OUT=$BUILD/bench/$SUB
LIB=$BUILD/libcnode.a
[ -f "$LIB" ] || { echo "bench/$(basename "$0"): $LIB not built (make all)"; exit 1; }
mkdir -p "$OUT/include/cnode"
EI_DIR=$(ls -d /usr/lib/erlang/lib/erl_interface-* 2>/dev/null | head -n 1)
CC=${CC:-cc}
CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O2 -I$EI_DIR/include"
LDLIBS="-L$EI_DIR/lib -lei -luv -luring -lcares -lssl -lcrypto -lpthread -lm"
for h in base/cn_base.h term/cn_term.h dist/cn_tls.h cnode/cnode.h otp/cn_global.h; do
  cp "$ROOT/$h" "$OUT/include/cnode/" || exit 1
done
PIN=""
command -v taskset >/dev/null 2>&1 && PIN="taskset -c 0"

build_plain() {
  for p in "$@"; do $CC $CFLAGS -I"$OUT/include/cnode" -o "$OUT/$p" "$HERE/$p.c" "$LIB" $LDLIBS || exit 1; done
}
build_ei() {
  for p in "$@"; do $CC $CFLAGS -o "$OUT/$p" "$HERE/$p.c" $LDLIBS || exit 1; done
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
start_epmd() {
  ERL_EPMD_PORT=$(free_port)
  export ERL_EPMD_PORT
  epmd -port "$ERL_EPMD_PORT" -address 127.0.0.1 >/dev/null 2>&1 &
  EPMD_PID=$!
  sleep 0.3
}
wait_ready() {
  _i=0
  until grep -q '^ready' "$1" 2>/dev/null; do
    _i=$((_i + 1)); [ $_i -gt 300 ] && { echo "bench/$(basename "$0"): $2 did not start"; cat "$1"; exit 1; }
    sleep 0.1
  done
}
