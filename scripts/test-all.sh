#!/bin/sh
# Installs what elm needs, builds it, and runs every test suite. This is what CI runs (.ci/run).
#   scripts/test-all.sh [build-dir]
# Steps (each can be skipped with its variable set to 0):
#   1. Release build with every backend this machine can compile (CUDA compiles without a GPU; its
#      tests skip), then all tests: unit, fixtures, real models, server, Vulkan on lavapipe, and the
#      browser/API end-to-end test (ctest).
#   2. ELM_CI_ASAN: the file readers, damaged inputs and conversions under AddressSanitizer + UBSan
#      (<build-dir>-asan).
#   3. ELM_CI_FUZZ_SECONDS (default 20): every libFuzzer target for that many seconds (<build-dir>-fuzz).
#   4. ELM_CI_AARCH64: the NEON kernels cross-compiled for aarch64 and tested under qemu-user
#      (<build-dir>-aarch64).
# The whole run fits in well under an hour on a 2-core machine.
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
JOBS=$(nproc 2>/dev/null || echo 2)
AARCH64=${ELM_CI_AARCH64:-1}
START=$(date +%s)
step() { echo "== [$(( $(date +%s) - START ))s] $*"; }

if [ "$AARCH64" = 1 ]; then ./scripts/install-deps.sh --aarch64; else ./scripts/install-deps.sh; fi

step "configure and build ($BUILD)"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j "$JOBS"

step "unit, fixture, model, server and end-to-end tests"
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS"

# The sanitizer and fuzz builds leave the GPU backends out: their code is not what they examine, and
# each would add minutes of compiling.
NO_GPU="-DELM_CUDA=OFF -DELM_VULKAN=OFF -DELM_BUILD_BENCH=OFF -DELM_E2E=OFF"

if [ "${ELM_CI_ASAN:-1}" = 1 ]; then
  step "AddressSanitizer: file readers, damaged inputs, conversions, tokenizers, server requests"
  cmake -S . -B "$BUILD-asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DELM_SANITIZE=ON $NO_GPU
  cmake --build "$BUILD-asan" -j "$JOBS" --target elm_tests elm_cli
  ctest --test-dir "$BUILD-asan" --output-on-failure -j "$JOBS" \
    -R '^(Damaged|ElmRoundTrip|ElmQuantized|ElmFile|GgufImport|GgufTokenizer|Compile|BadInput|Tokenizer|Jinja|Utf8|ServerRequest|All/TokenizerRefs|All/ChatRefs)\.|ElmFixture|GgufFixture'
fi

FUZZ_SECONDS=${ELM_CI_FUZZ_SECONDS:-20}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  step "fuzzing: ${FUZZ_SECONDS}s per target"
  ELM_FUZZ_CMAKE_ARGS="$NO_GPU" ./fuzz/run_all.sh "$FUZZ_SECONDS" "$BUILD-fuzz"
fi

if [ "$AARCH64" = 1 ]; then
  step "aarch64: NEON kernels under qemu-user"
  ./scripts/test-aarch64.sh "$BUILD-aarch64"
fi
step "all tests passed"
