#!/bin/sh
# Installs what elm needs, builds it, and runs every test suite. This is what CI runs (.ci/run).
#   scripts/test-all.sh [build-dir]
# Steps (each can be skipped with its variable set to 0):
#   1. Release build with every backend this machine can compile (CUDA compiles without a GPU; its
#      tests skip), then all tests: unit, fixtures, real models, server, Vulkan on lavapipe, and the
#      browser/API end-to-end test (ctest).
#   2. ELM_CI_ASAN: the file readers, damaged inputs, conversions, tokenizers and request parsing
#      under AddressSanitizer + UBSan (<build-dir>-san, a clang build shared with the fuzzers).
#   3. ELM_CI_FUZZ_SECONDS (default 20): every libFuzzer target for that many seconds (<build-dir>-san).
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
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DELM_BUILD_BENCH=OFF
cmake --build "$BUILD" -j "$JOBS"

step "unit, fixture, model, server and end-to-end tests"
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS"

# One clang build serves the sanitizers and the fuzzers: every library source is compiled with
# AddressSanitizer, UBSan and libFuzzer's coverage hooks (ELM_FUZZ). It leaves the GPU backends out:
# their code is not what it examines, and each would add minutes of compiling.
SAN="$BUILD-san"
if [ "${ELM_CI_ASAN:-1}" = 1 ] || [ "${ELM_CI_FUZZ_SECONDS:-20}" -gt 0 ]; then
  step "sanitizer build ($SAN: clang, ASan + UBSan + fuzzer coverage)"
  cmake -S . -B "$SAN" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
    -DCMAKE_CXX_COMPILER=clang++-14 -DELM_FUZZ=ON -DELM_CUDA=OFF -DELM_VULKAN=OFF -DELM_BUILD_BENCH=OFF -DELM_E2E=OFF
  cmake --build "$SAN" -j "$JOBS"
fi

if [ "${ELM_CI_ASAN:-1}" = 1 ]; then
  step "AddressSanitizer + UBSan: file readers, damaged inputs, conversions, tokenizers, server requests"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$SAN" --output-on-failure -j "$JOBS" \
    -R '^(Damaged|ElmRoundTrip|ElmQuantized|ElmFile|GgufImport|GgufTokenizer|Compile|BadInput|Tokenizer|Jinja|Utf8|ServerRequest|All/TokenizerRefs|All/ChatRefs)\.|ElmFixture|GgufFixture'
fi

FUZZ_SECONDS=${ELM_CI_FUZZ_SECONDS:-20}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  step "fuzzing: ${FUZZ_SECONDS}s per target"
  ./fuzz/run_all.sh "$FUZZ_SECONDS" "$SAN"
fi

if [ "$AARCH64" = 1 ]; then
  step "aarch64: NEON kernels under qemu-user"
  ./scripts/test-aarch64.sh "$BUILD-aarch64"
fi
step "all tests passed"
