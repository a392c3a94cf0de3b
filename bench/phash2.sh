#!/bin/sh
# bench/phash2.sh BUILD: erlang:phash2/2 throughput in C (libcnode's cn_phash2_range) against the BEAM's own
# erlang:phash2/2 on the same terms in the same run, both pinned to CPU 0 (BENCHMARKING.md). Prints a table,
# then `bench=phash2 impl=<c|beam> value=<v> unit=terms/s` and `ratio=<c/beam>`. BENCH_QUICK=1: a short run.
set -eu
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
[ -f "$BUILD/libcnode.a" ] || { echo "phash2.sh: $BUILD/libcnode.a not built (make all)"; exit 1; }
N=20000 SECS=5.0 REPS=3
[ -n "${BENCH_QUICK:-}" ] && N=5000 SECS=1.0 REPS=1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cnode-bench-phash2.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
PIN=
command -v taskset >/dev/null 2>&1 && taskset -c 0 true 2>/dev/null && PIN="taskset -c 0"

escript "$HERE/phash2_beam.escript" gen "$N" "$TMP/terms.hex"
# The C side is built with the Makefile's flags against the library in BUILD.
EI_DIR=$(ls -d /usr/lib/erlang/lib/erl_interface-* | head -n 1)
${CC:-cc} -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O2 -I"$REPO/base" -I"$REPO/term" -I"$EI_DIR/include" \
  -o "$TMP/phash2_bench" "$HERE/phash2_bench.c" "$BUILD/libcnode.a" -L"$EI_DIR/lib" -lei -luv -lssl -lcrypto \
  -lpthread -lm

best_c=0 best_b=0 sum_c= sum_b=
i=0
while [ $i -lt $REPS ]; do
  set -- $($PIN "$TMP/phash2_bench" "$TMP/terms.hex" "$SECS" 2>/dev/null)
  [ "$1" -gt "$best_c" ] && best_c=$1
  sum_c=$2
  set -- $($PIN escript "$HERE/phash2_beam.escript" run "$TMP/terms.hex" "$SECS" 2>/dev/null)
  [ "$1" -gt "$best_b" ] && best_b=$1
  sum_b=$2
  i=$((i + 1))
done
[ "$sum_c" = "$sum_b" ] || { echo "phash2.sh: C and BEAM hashes differ (checksums $sum_c vs $sum_b)"; exit 1; }
ratio=$(awk -v c="$best_c" -v b="$best_b" 'BEGIN { printf "%.2f", c / b }')
echo "phash2 throughput, $N terms (Horde keys, MapSets, binaries, strings, bignums), best of $REPS x ${SECS}s, ${PIN:-unpinned}"
printf '%-6s %14s\n' impl terms/s
printf '%-6s %14s\n' c "$best_c"
printf '%-6s %14s\n' beam "$best_b"
echo "checksum $sum_c (equal on both sides)"
echo "bench=phash2 impl=c value=$best_c unit=terms/s"
echo "bench=phash2 impl=beam value=$best_b unit=terms/s"
echo "ratio=$ratio"
