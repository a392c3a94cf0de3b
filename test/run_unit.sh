#!/bin/sh
# Runs each cmocka test binary as its own process with a timeout, then prints one closing line.
passed=0; failed=0
for t in "$@"; do
  if timeout 300 "$t"; then passed=$((passed + 1)); else echo "FAILED: $t"; failed=$((failed + 1)); fi
done
echo "unit binaries: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
