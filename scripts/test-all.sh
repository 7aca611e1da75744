#!/bin/sh
# Installs what elm needs, builds it, and runs every test suite. This is what CI runs (.ci/run).
#   scripts/test-all.sh [build-dir]
# Besides the Release build it runs the file-reader tests under AddressSanitizer + UBSan (<build-dir>-asan;
# ELM_CI_ASAN=0 skips) and every fuzz target for ELM_CI_FUZZ_SECONDS seconds (default 30; 0 skips) in
# <build-dir>-fuzz.
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
JOBS=$(nproc 2>/dev/null || echo 2)

./scripts/install-deps.sh

echo "== configure and build ($BUILD)"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j "$JOBS"

echo "== unit, fixture and model tests"
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS"

echo "== AddressSanitizer: file readers, damaged inputs, conversions"
if [ "${ELM_CI_ASAN:-1}" = 1 ]; then
  cmake -S . -B "$BUILD-asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DELM_SANITIZE=ON -DELM_BUILD_BENCH=OFF
  cmake --build "$BUILD-asan" -j "$JOBS" --target elm_tests elm_cli
  ctest --test-dir "$BUILD-asan" --output-on-failure -j "$JOBS" \
    -R '^(Damaged|ElmRoundTrip|ElmQuantized|ElmFile|GgufImport|Compile|BadInput)\.|ElmFixture|GgufFixture'
fi

FUZZ_SECONDS=${ELM_CI_FUZZ_SECONDS:-30}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  echo "== fuzzing: ${FUZZ_SECONDS}s per target"
  ./fuzz/run_all.sh "$FUZZ_SECONDS" "$BUILD-fuzz"
fi
