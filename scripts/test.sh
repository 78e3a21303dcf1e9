#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite:
#   1. Release build, every GoogleTest test through ctest;
#   2. the same tests under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. each libFuzzer target for a few seconds on its seed corpus (clang).
# Usage: scripts/test.sh [--quick]   (--quick: step 1 only)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Adds "N tests failed out of M" from ctest's summary to the totals printed at the end.
passed=0 failed=0
count() {
  local line out_of n_failed
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$log" | tail -1)
  out_of=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
  n_failed=$(sed -E 's/.*, ([0-9]+) tests failed.*/\1/' <<<"$line")
  passed=$((passed + out_of - n_failed)) failed=$((failed + n_failed))
}

echo "== release build + tests"
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$jobs" | tee "$log"
count

if [ "${1:-}" = "--quick" ]; then echo "tests: $passed passed, $failed failed"; exit 0; fi

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build + tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOWBIT_SANITIZE=ON -DLOWBIT_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" | tee "$log"
count

echo "== fuzzers (libFuzzer, clang)"
bash scripts/fuzz.sh 15
echo "tests: $passed passed, $failed failed"
