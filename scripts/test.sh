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

echo "== release build + tests"
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$jobs"

if [ "${1:-}" = "--quick" ]; then exit 0; fi

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build + tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOWBIT_SANITIZE=ON -DLOWBIT_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

echo "== fuzzers (libFuzzer, clang)"
bash scripts/fuzz.sh 15
