#!/bin/sh
# run_analyze.sh DIR CFLAGS...: static analysis of the library, both programs and the fault harness's packet
# delayer (interop/faults/faults_delay.c), failing on any finding.
# clang's analyzer (scan-build) analyses a clean build in DIR/build (emptied first, so every file is analysed
# each run; the report goes to DIR/report), and cppcheck reads the same sources with the same -I and -D flags.
# Findings in the project's own code are fixed; a false one is suppressed where it is, with a comment saying why
# it is false (cppcheck: // cppcheck-suppress id; clang: an assumption under __clang_analyzer__).
dir=$1
shift
flags="$*"
jobs=$(nproc 2>/dev/null || echo 2)
rm -rf "$dir/build" "$dir/report"
mkdir -p "$dir/build" "$dir/report" "$dir/include"

t0=$(date +%s)
scan-build --status-bugs -o "$dir/report" make --no-print-directory -j"$jobs" BUILD="$dir/build" all "$dir/build/faults_delay" >"$dir/scan-build.log" 2>&1
sb_rc=$?
t1=$(date +%s)
grep -E 'warning:|error:' "$dir/scan-build.log" | grep -v '^scan-build:'
sb=$(sed -n 's/^scan-build: \([0-9][0-9]*\) bugs\{0,1\} found\./\1/p' "$dir/scan-build.log")
if [ -z "$sb" ]; then
  if grep -q '^scan-build: No bugs found' "$dir/scan-build.log"; then sb=0; else sb="?"; fi
fi
if [ "$sb_rc" -ne 0 ] && [ "$sb" = 0 ]; then # the build itself failed
  tail -20 "$dir/scan-build.log"
  sb="?"
fi
[ "$sb" != 0 ] && [ "$sb" != "?" ] && echo "analyze: scan-build's report: scan-view $(ls -d "$dir"/report/*/ 2>/dev/null | head -1)"

# uthash is macros only: cppcheck needs its header to read HASH_ITER and the rest (unknownMacro otherwise), but
# not the rest of /usr/include, whose glibc and libuv macros it cannot parse. So it gets that one header.
ln -sf /usr/include/uthash.h "$dir/include/uthash.h"
incs=""
for f in $flags; do
  case $f in -I* | -D*) incs="$incs $f" ;; esac
done
# warning and portability: bugs and non-portable code. Not style (scope, shadowing, redundant assignments): it
# is opinion, and the project's formatting and review handle it.
cppcheck -q --std=c11 --enable=warning,portability,performance --inline-suppr --error-exitcode=1 -j"$jobs" \
  --template='{file}:{line}:{column}: {severity}: {message} [{id}]' -I"$dir/include" $incs \
  base term epmd dist cnode otp sorted_set horde_compat cluster cmd interop/faults >"$dir/cppcheck.log" 2>&1
cc_rc=$?
t2=$(date +%s)
cat "$dir/cppcheck.log"
cc=$(grep -cE '^[^ ]+:[0-9]+:[0-9]+: ' "$dir/cppcheck.log")
[ "$cc_rc" -ne 0 ] && [ "$cc" = 0 ] && cc="?"

echo "analyze: scan-build $sb findings ($((t1 - t0)) s), cppcheck $cc findings ($((t2 - t1)) s)"
[ "$sb" = 0 ] && [ "$cc" = 0 ]
