#!/bin/sh
# The install check (`make install-test`, a step of `make test`): what a user does with the library, from the build
# folder: `make install PREFIX=<temp dir>`, then examples/echo/main.c (the README's 20-line example) compiled with
# nothing but `pkg-config --cflags --libs cnode`, and again with `--static` (a fully static program, so every
# private dependency must be in cnode.pc), each run and answered to an `erl -name` node: net_adm:ping and an echo
# round trip, over a private OTP epmd on a port picked for the run. Also: the SONAME and its links, that
# libcnode.so exports exactly the CN_EXPORT declarations of the installed headers (all cn_*, no libei), that each
# installed header compiles alone (C and C++), `make examples-installed`, `cnode --version`, `man cnode`; then
# `make uninstall` leaves no file behind. Prints `ok name` / `FAIL name: reason` and `install: N passed, N failed`.
# Every process it starts is stopped by its pid. INSTALL_KEEP=1 keeps the temp dir.
set -u

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
MAKE=${MAKE:-make}
cd "$REPO" || exit 1

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1: $2"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cnode-install.XXXXXX")
PREFIX=$TMP/prefix
PIDS=
cleanup() {
  trap - EXIT INT TERM HUP
  for p in $PIDS; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  if [ -z "${INSTALL_KEEP:-}" ] && [ "$FAIL" = 0 ]; then rm -rf "$TMP"; else echo "install: files kept in $TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

summary() {
  echo "install: $PASS passed, $FAIL failed"
  [ "$FAIL" = 0 ]
  exit $?
}

V_MAJOR=$(sed -n 's/^#define CN_VERSION_MAJOR \([0-9]*\)$/\1/p' base/cn_base.h)
V_MINOR=$(sed -n 's/^#define CN_VERSION_MINOR \([0-9]*\)$/\1/p' base/cn_base.h)
V_PATCH=$(sed -n 's/^#define CN_VERSION_PATCH \([0-9]*\)$/\1/p' base/cn_base.h)
VERSION=$V_MAJOR.$V_MINOR.$V_PATCH
LIB=$PREFIX/lib

# ---- install -----------------------------------------------------------------------------------------------
# LDCONFIG= : a temp prefix is not the dynamic linker's business; the programs below find it by LD_LIBRARY_PATH.
if ! $MAKE --no-print-directory BUILD="$BUILD" install DESTDIR= PREFIX="$PREFIX" LDCONFIG= >"$TMP/install.log" 2>&1
then
  bad install "make install failed: $(tail -3 "$TMP/install.log")"
  summary
fi
expect="bin/cnode bin/cnode-epmd include/cnode/cn_base.h include/cnode/cn_term.h include/cnode/cn_tls.h
include/cnode/cn_global.h include/cnode/cn_cluster.h include/cnode/cn_pg.h include/cnode/cn_pubsub.h include/cnode/cn_fuse.h include/cnode/cn_alarm.h include/cnode/cn_watchdog.h include/cnode/cnode.h include/cnode/horde.h include/cnode/cn_sorted_set.h lib/libcnode.a lib/libcnode.so lib/libcnode.so.$V_MAJOR
lib/libcnode.so.$VERSION lib/pkgconfig/cnode.pc share/man/man1/cnode-epmd.1 share/man/man1/cnode.1"
got=$(cd "$PREFIX" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort | tr '\n' ' ')
want=$(echo $expect | tr ' ' '\n' | sort | tr '\n' ' ')
if [ "$got" = "$want" ]; then ok install; else bad install "installed [$got], expected [$want]"; fi

# ---- the shared library: SONAME, links, exports ----------------------------------------------------------------
soname=$(readelf -d "$LIB/libcnode.so.$VERSION" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" = "libcnode.so.$V_MAJOR" ] && [ "$(readlink "$LIB/libcnode.so.$V_MAJOR")" = "libcnode.so.$VERSION" ] &&
   [ "$(readlink "$LIB/libcnode.so")" = "libcnode.so.$V_MAJOR" ]; then
  ok soname
else
  bad soname "SONAME '$soname', links $(readlink "$LIB/libcnode.so.$V_MAJOR") $(readlink "$LIB/libcnode.so")"
fi

nm -D --defined-only "$LIB/libcnode.so.$VERSION" | awk '{print $NF}' | sort -u >"$TMP/exported"
# Declarations: lines at column 0 that declare a cn_ function (return type, then the name and its '(').
cat "$PREFIX"/include/cnode/*.h | grep -E '^[A-Za-z_][A-Za-z0-9_ *]*[ *]cn_[a-z0-9_]+\(' | grep -Ev '^(typedef|static) ' \
  >"$TMP/decls"
grep -v '^CN_EXPORT ' "$TMP/decls" >"$TMP/unmarked"
sed 's/^[^(]*[ *]\(cn_[a-z0-9_]*\)(.*/\1/' "$TMP/decls" | sort -u >"$TMP/declared"
stray=$(grep -v '^cn_' "$TMP/exported" | head -5 | tr '\n' ' ')
if [ -s "$TMP/unmarked" ]; then
  bad exports "declared without CN_EXPORT: $(head -3 "$TMP/unmarked")"
elif [ -n "$stray" ] || ! cmp -s "$TMP/exported" "$TMP/declared"; then
  bad exports "not cn_: [$stray]; exported but not declared: [$(comm -23 "$TMP/exported" "$TMP/declared" |
    head -5 | tr '\n' ' ')]; declared but not exported: [$(comm -13 "$TMP/exported" "$TMP/declared" | head -5 |
    tr '\n' ' ')]"
else
  ok "exports ($(wc -l <"$TMP/exported") symbols, all cn_, as declared)"
fi

# ---- pkg-config and the headers as installed ----------------------------------------------------------------
PKG_CONFIG_PATH=$LIB/pkgconfig
export PKG_CONFIG_PATH
if [ "$(pkg-config --modversion cnode 2>&1)" = "$VERSION" ] && pkg-config --cflags --libs --static cnode >/dev/null
then ok pkg-config; else bad pkg-config "$(pkg-config --modversion cnode 2>&1)"; fi

hdr_fail=
for h in "$PREFIX"/include/cnode/*.h; do
  n=$(basename "$h")
  # Every quoted include names a header installed beside it (no internal header leaks into the public ones).
  for inc in $(sed -n 's/^#include "\(.*\)"/\1/p' "$h"); do
    [ -f "$PREFIX/include/cnode/$inc" ] || hdr_fail="$hdr_fail $n includes $inc, which is not installed;"
  done
  printf '#include <cnode/%s>\n' "$n" >"$TMP/hdr.c"
  cc -Wall -Wextra -Werror -pedantic -fsyntax-only $(pkg-config --cflags cnode) "$TMP/hdr.c" >"$TMP/hdr.log" 2>&1 ||
    hdr_fail="$hdr_fail $n alone (C): $(head -2 "$TMP/hdr.log");"
  if command -v c++ >/dev/null 2>&1; then
    c++ -Wall -Wextra -Werror -fsyntax-only $(pkg-config --cflags cnode) -x c++ "$TMP/hdr.c" >"$TMP/hdr.log" 2>&1 ||
      hdr_fail="$hdr_fail $n alone (C++): $(head -2 "$TMP/hdr.log");"
  fi
done
if [ -z "$hdr_fail" ]; then ok headers; else bad headers "$hdr_fail"; fi

# The README's example is examples/echo/main.c without its opening comment.
sed -n '/^## A C node in 20 lines/,/^```$/p' README.md | sed -n '/^```c$/,/^```$/p' | sed '1d;$d' >"$TMP/readme.c"
awk 'NR == 1 && /^\/\*/ { skip = 1 } skip { if (/\*\//) skip = 0; next } { print }' examples/echo/main.c >"$TMP/example.c"
if [ -s "$TMP/readme.c" ] && cmp -s "$TMP/readme.c" "$TMP/example.c"; then
  ok "readme example is examples/echo/main.c"
else
  bad "readme example" "README.md's 20-line example differs from examples/echo/main.c: $(diff "$TMP/readme.c" \
    "$TMP/example.c" | head -4 | tr '\n' ' ')"
fi

# ---- build the example: shared, then fully static ------------------------------------------------------------
if cc -o "$TMP/echo_shared" examples/echo/main.c $(pkg-config --cflags --libs cnode) >"$TMP/cc.log" 2>&1 &&
   readelf -d "$TMP/echo_shared" | grep -q "NEEDED.*\[libcnode.so.$V_MAJOR\]"; then
  ok "build shared"
else
  bad "build shared" "$(head -3 "$TMP/cc.log")"
fi
# glibc warns that getaddrinfo and dlopen in a static program need its shared libraries at run time: expected.
if cc -static -o "$TMP/echo_static" examples/echo/main.c $(pkg-config --static --cflags --libs cnode) \
     >"$TMP/cc_static.log" 2>&1 && ! readelf -d "$TMP/echo_static" 2>/dev/null | grep -q NEEDED; then
  ok "build static"
else
  bad "build static" "$(grep -v 'requires at runtime\|in function' "$TMP/cc_static.log" | head -3)"
fi

if $MAKE --no-print-directory BUILD="$BUILD" examples-installed PREFIX="$PREFIX" >"$TMP/examples.log" 2>&1; then
  ok "examples-installed ($(grep -c '^built' "$TMP/examples.log") programs)"
else
  bad examples-installed "$(tail -3 "$TMP/examples.log")"
fi

# ---- run them and ask an erl node --------------------------------------------------------------------------
if ! command -v erl >/dev/null 2>&1 || ! command -v epmd >/dev/null 2>&1; then
  bad run "erl or epmd not found (apt-get install erlang-nox)"
  summary
fi
HOME_DIR=$TMP/home
mkdir -p "$HOME_DIR"
EPMD_PORT=$(HOME=$HOME_DIR erl -noshell -noinput -eval '
  {ok, S} = gen_tcp:listen(0, [{ip, {127,0,0,1}}]), {ok, P} = inet:port(S), io:format("~b~n", [P]), halt().')
epmd -port "$EPMD_PORT" >"$TMP/epmd.log" 2>&1 &
EPMD_PID=$!
PIDS="$PIDS $EPMD_PID"
i=0
until epmd -port "$EPMD_PORT" -names >/dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 50 ] || ! kill -0 "$EPMD_PID" 2>/dev/null; then
    bad run "epmd did not start on port $EPMD_PORT: $(cat "$TMP/epmd.log")"
    summary
  fi
  sleep 0.1
done
COOKIE=install_test_$$

# Waits until name is registered with the run's epmd (5 s at most).
registered() {
  i=0
  until epmd -port "$EPMD_PORT" -names 2>/dev/null | grep -q "^name $1 "; do
    i=$((i + 1))
    [ $i -gt 50 ] && return 1
    sleep 0.1
  done
}

for kind in shared static; do
  prog=$TMP/echo_$kind
  if [ ! -x "$prog" ]; then bad "run $kind" "not built"; continue; fi
  ERL_EPMD_PORT=$EPMD_PORT LD_LIBRARY_PATH=$LIB "$prog" "$COOKIE" >"$TMP/run_$kind.log" 2>&1 &
  PROG_PID=$!
  PIDS="$PIDS $PROG_PID"
  if ! registered demo; then
    bad "run $kind" "demo not registered with epmd in 5 s: $(head -3 "$TMP/run_$kind.log")"
  else
    answer=$(ERL_EPMD_PORT=$EPMD_PORT HOME=$HOME_DIR timeout 30 erl -noshell -noinput -name "x@127.0.0.1" \
      -setcookie "$COOKIE" -eval '
        N = '"'"'demo@127.0.0.1'"'"',
        R = case net_adm:ping(N) of
              pong -> {echo, N} ! {self(), {hi, 42}},
                      receive {hi, 42} -> pong_and_echo after 5000 -> {pong, no_echo} end;
              pang -> pang
            end,
        io:format("~p~n", [R]), halt().' 2>&1)
    if [ "$answer" = pong_and_echo ]; then ok "run $kind (erl: ping pong, echo answered)"
    else bad "run $kind" "erl got: $answer; program said: $(head -3 "$TMP/run_$kind.log")"; fi
  fi
  kill "$PROG_PID" 2>/dev/null
  wait "$PROG_PID" 2>/dev/null
  PIDS=$(echo "$PIDS" | sed "s/ $PROG_PID\b//")
  # The next program takes the same name: wait until epmd has dropped this one.
  i=0
  while epmd -port "$EPMD_PORT" -names 2>/dev/null | grep -q '^name demo ' && [ $i -lt 50 ]; do
    i=$((i + 1)); sleep 0.1
  done
done

# ---- the installed programs and man pages -----------------------------------------------------------------
v1=$("$PREFIX/bin/cnode" --version 2>&1)
v2=$("$PREFIX/bin/cnode-epmd" --version 2>&1)
if [ "$v1" = "cnode $VERSION" ] && [ "$v2" = "cnode-epmd $VERSION" ]; then ok "--version"
else bad "--version" "'$v1', '$v2'"; fi
if command -v man >/dev/null 2>&1; then
  m1=$(MANPATH=$PREFIX/share/man man -w cnode 2>&1)
  m2=$(MANPATH=$PREFIX/share/man man -w cnode-epmd 2>&1)
  warn=$(MANWIDTH=80 man --warnings -l "$PREFIX/share/man/man1/cnode.1" "$PREFIX/share/man/man1/cnode-epmd.1" \
    2>&1 >/dev/null)
  if [ "$m1" = "$PREFIX/share/man/man1/cnode.1" ] && [ "$m2" = "$PREFIX/share/man/man1/cnode-epmd.1" ] &&
     [ -z "$warn" ]; then ok "man pages"; else bad "man pages" "$m1 $m2 $warn"; fi
fi

# ---- uninstall ----------------------------------------------------------------------------------------------
if $MAKE --no-print-directory BUILD="$BUILD" uninstall DESTDIR= PREFIX="$PREFIX" LDCONFIG= >"$TMP/uninstall.log" 2>&1
then
  left=$(cd "$PREFIX" && find . \( -type f -o -type l \) | tr '\n' ' ')
  if [ -z "$left" ]; then ok "uninstall (no file left)"; else bad uninstall "left behind: $left"; fi
else
  bad uninstall "$(tail -3 "$TMP/uninstall.log")"
fi

summary
