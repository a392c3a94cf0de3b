#!/bin/sh
# The interop suites once more against cnode built with AddressSanitizer + UBSan (`make interop-asan`): every
# report (leaks included) is written to a file, and any file fails the run. Usage: sh interop/run_san.sh BUILD
set -u
BUILD=${1:-build/asan}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/cnode-san.XXXXXX")
# The term suite checks the `cnode term` tool, not the node: a tenth of its terms is plenty under ASan.
TERM_SUITE_SCALE=10 ASAN_OPTIONS="log_path=$DIR/asan:detect_leaks=1:abort_on_error=0" \
UBSAN_OPTIONS="log_path=$DIR/ubsan:print_stacktrace=1:halt_on_error=1" \
  sh "$(dirname "$0")/run.sh" "$BUILD"
rc=$?
reports=$(ls "$DIR" 2>/dev/null | wc -l)
if [ "$reports" -gt 0 ]; then
  for f in "$DIR"/*; do echo "== sanitizer report $f"; head -40 "$f"; done
  echo "interop-asan: $reports sanitizer report(s) in $DIR"
  echo "sanitizers: 0 passed, 1 failed"
  exit 1
fi
rm -rf "$DIR"
echo "sanitizers: 1 passed, 0 failed"
exit $rc
