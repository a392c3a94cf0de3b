#!/bin/sh
# `make examples-installed`: builds every examples/<name>/main.c against an installed cnode with the flags
# pkg-config gives and nothing else, once against libcnode.so and once fully static (--static).
# Usage: sh pkg/examples_installed.sh PCDIR OUTDIR (PCDIR: the folder holding the installed cnode.pc).
set -u
PCDIR=$1
OUT=$2
PKG_CONFIG_PATH=$PCDIR${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH
if ! pkg-config --exists cnode; then
  echo "examples-installed: no cnode.pc in $PCDIR (make install PREFIX=... first)"
  exit 1
fi
mkdir -p "$OUT"
rc=0
for src in examples/*/main.c; do
  name=$(basename "$(dirname "$src")")
  if cc -o "$OUT/$name" "$src" $(pkg-config --cflags --libs cnode); then echo "built $name (shared)"
  else echo "examples-installed: $name (shared) failed"; rc=1; fi
  # glibc's warnings about getaddrinfo and dlopen in static programs are expected; anything else is shown.
  if cc -static -o "$OUT/$name-static" "$src" $(pkg-config --static --cflags --libs cnode) >"$OUT/$name-static.log" 2>&1
  then echo "built $name (static)"
  else grep -v 'requires at runtime\|in function' "$OUT/$name-static.log"; echo "examples-installed: $name (static) failed"; rc=1
  fi
done
exit $rc
