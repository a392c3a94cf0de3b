#!/bin/sh
# `make deb`: splits the tree `make install` staged in BUILD/deb/root (PREFIX=/usr, LIBDIR=/usr/lib/<multiarch>)
# into two Debian packages, built with dpkg-deb alone (no debhelper):
#   libcnodeMAJOR  the shared library (libcnode.so.MAJOR and its file), the cnode and cnode-epmd programs, their man
#                  pages; Depends from the ELF files' NEEDED entries, read from the shlibs files of the packages
#                  that hold those libraries (what dpkg-shlibdeps does, without symbols files); an ldconfig trigger
#                  and a shlibs file of its own;
#   libcnode-dev   the headers (/usr/include/cnode), libcnode.a, the libcnode.so link and cnode.pc; Depends on the
#                  runtime package of the same version and on the -dev packages cnode.pc names.
# Usage: sh pkg/deb.sh BUILD VERSION MAJOR. The .deb files land in BUILD/.
set -eu

BUILD=$1
VERSION=$2
MAJOR=$3
DEBVER=$VERSION-1
ARCH=$(dpkg --print-architecture)
ROOT=$BUILD/deb/root
RT=libcnode$MAJOR
DEV=libcnode-dev
MAINT="cnode maintainers <maintainers@users.noreply.r-seed-ad56efae.example>"
LIBDIR=$(cd "$ROOT" && find usr/lib -name "libcnode.so.$VERSION" | sed 's|/[^/]*$||')
[ -n "$LIBDIR" ] || { echo "deb: no libcnode.so.$VERSION under $ROOT/usr/lib (make install DESTDIR=... first)"; exit 1; }

# As Debian ships them: programs and the shared library stripped (strip-unneeded keeps the dynamic symbols), the
# static library without debug sections, man pages gzipped without a timestamp.
strip --strip-unneeded "$ROOT/$LIBDIR/libcnode.so.$VERSION" "$ROOT/usr/bin/cnode" "$ROOT/usr/bin/cnode-epmd"
strip --strip-debug "$ROOT/$LIBDIR/libcnode.a"
gzip -9n "$ROOT"/usr/share/man/man1/*.1

rm -rf "$BUILD/deb/$RT" "$BUILD/deb/$DEV"
# move PKG PATH...: moves staged paths into the package tree PKG.
move() {
  pkg=$1
  shift
  for p in "$@"; do
    mkdir -p "$BUILD/deb/$pkg/$(dirname "$p")"
    mv "$ROOT/$p" "$BUILD/deb/$pkg/$p"
  done
}
move $RT "$LIBDIR/libcnode.so.$VERSION" "$LIBDIR/libcnode.so.$MAJOR" usr/bin/cnode usr/bin/cnode-epmd \
  usr/share/man/man1/cnode.1.gz usr/share/man/man1/cnode-epmd.1.gz
move $DEV usr/include/cnode "$LIBDIR/libcnode.a" "$LIBDIR/libcnode.so" "$LIBDIR/pkgconfig/cnode.pc"
left=$(cd "$ROOT" && find . ! -type d)
[ -z "$left" ] || { echo "deb: installed files in no package: $left"; exit 1; }

# The dependency for one NEEDED library: the line of its package's shlibs file ("libuv 1 libuv1 (>= 1.11.0)"),
# else the bare package name.
dep_of() {
  lib=$1
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l && $0 ~ /=>/ { print $NF; exit }')
  [ -n "$path" ] || { echo "deb: $lib not found by ldconfig" >&2; return 1; }
  owner=
  for p in "$path" "$(readlink -f "$path")" "${path#/usr}" "/usr$path"; do
    owner=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$owner" ] && break
  done
  [ -n "$owner" ] || { echo "deb: no package holds $path" >&2; return 1; }
  name=${lib%%.so*}
  so=${lib#*.so.}
  for f in "/var/lib/dpkg/info/$owner:$ARCH.shlibs" "/var/lib/dpkg/info/$owner.shlibs"; do
    if [ -f "$f" ]; then
      d=$(awk -v n="$name" -v v="$so" '$1 == n && $2 == v { $1 = ""; $2 = ""; sub(/^ +/, ""); print; exit }' "$f")
      [ -n "$d" ] && { echo "$d"; return 0; }
    fi
  done
  echo "$owner"
}
needed=$(for f in "$BUILD/deb/$RT/$LIBDIR/libcnode.so.$VERSION" "$BUILD/deb/$RT/usr/bin/cnode" \
                  "$BUILD/deb/$RT/usr/bin/cnode-epmd"; do
           readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
         done | sort -u)
deps=
for lib in $needed; do
  d=$(dep_of "$lib")
  case ", $deps, " in *", $d, "*) ;; *) deps=${deps:+$deps, }$d ;; esac
done

# control PKG SECTION DEPENDS SUMMARY DESCRIPTION: DEBIAN/control and md5sums of a package tree.
control() {
  dir=$BUILD/deb/$1
  mkdir -p "$dir/DEBIAN"
  size=$(du -sk --exclude=DEBIAN "$dir" | cut -f1)
  cat >"$dir/DEBIAN/control" <<EOF
Package: $1
Version: $DEBVER
Architecture: $ARCH
Maintainer: $MAINT
Installed-Size: $size
Section: $2
Priority: optional
Depends: $3
Description: $4
$5
EOF
  (cd "$dir" && find . -type f ! -path './DEBIAN/*' | sed 's|^\./||' | sort | xargs md5sum >DEBIAN/md5sums)
}

control $RT libs "$deps" "C node for Erlang/Elixir clusters - library and programs" \
" libcnode makes a C program a full node of an Erlang or Elixir cluster: the
 distribution protocol over TCP or TLS, EPMD, C processes with pids, links,
 monitors and gen_server calls, OTP's global, and Horde's registry and dynamic
 supervisor.
 .
 This package holds the shared library, the cnode program (a C node with demo
 processes and term tools) and cnode-epmd (an EPMD server)."
printf 'libcnode %s %s (>= %s)\n' "$MAJOR" "$RT" "$VERSION" >"$BUILD/deb/$RT/DEBIAN/shlibs"
printf 'activate-noawait ldconfig\n' >"$BUILD/deb/$RT/DEBIAN/triggers"

control $DEV libdevel "$RT (= $DEBVER), libuv1-dev, liburing-dev, libc-ares-dev, libssl-dev, erlang-dev" \
  "C node for Erlang/Elixir clusters - development files" \
" libcnode makes a C program a full node of an Erlang or Elixir cluster.
 .
 This package holds the headers (#include <cnode/cnode.h>), the static library
 and cnode.pc: build with \$(pkg-config --cflags --libs cnode)."

for p in $RT $DEV; do
  dpkg-deb --root-owner-group -Zxz --build "$BUILD/deb/$p" "$BUILD/${p}_${DEBVER}_$ARCH.deb" >/dev/null
  echo "deb: $BUILD/${p}_${DEBVER}_$ARCH.deb ($(du -k "$BUILD/${p}_${DEBVER}_$ARCH.deb" | cut -f1) KiB)"
done
echo "deb: $RT depends on: $deps"
