#!/bin/sh
# Runs every libFuzzer target (fuzz/fuzz_*.cpp) for SECONDS each, starting from fresh seed inputs
# (fuzz/make_seeds.py, plus .elm files the fuzz build's `elm convert` makes from them). CI calls this.
#   fuzz/run_all.sh SECONDS [BUILD_DIR]
# BUILD_DIR (default build-fuzz) is configured with clang and -DELM_FUZZ=ON and built when needed
# (ELM_FUZZ_CMAKE_ARGS adds CMake options, e.g. -DELM_CUDA=OFF).
# Corpora grow in BUILD_DIR/fuzz-corpus/<target>; crashing inputs land in BUILD_DIR/fuzz-crashes/.
# Exits non-zero when any target finds a crash, a leak or an uncaught exception.
set -eu
SECS=${1:?usage: fuzz/run_all.sh SECONDS [BUILD_DIR]}
BUILD=${2:-build-fuzz}
cd "$(dirname "$0")/.."
CC=${CC:-clang-14}
CXX=${CXX:-clang++-14}
command -v "$CXX" >/dev/null || CXX=clang++
command -v "$CC" >/dev/null || CC=clang

if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$CC" \
    -DCMAKE_CXX_COMPILER="$CXX" -DELM_FUZZ=ON -DELM_BUILD_TESTS=OFF -DELM_BUILD_BENCH=OFF ${ELM_FUZZ_CMAKE_ARGS:-}
fi
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)"

SEEDS="$BUILD/fuzz-seeds"
rm -rf "$SEEDS"
/usr/bin/python3 fuzz/make_seeds.py "$SEEDS"
mkdir -p "$SEEDS/elm"
ELM="$BUILD/bin/elm"
"$ELM" convert "$SEEDS/hf" -o "$SEEDS/elm/int8.elm" --quant int8 2>/dev/null
"$ELM" convert "$SEEDS/hf" -o "$SEEDS/elm/int4.elm" --quant int4 2>/dev/null
"$ELM" convert "$SEEDS/gguf/llama-q4_1.gguf" -o "$SEEDS/elm/gguf.elm" 2>/dev/null
"$ELM" compile "$SEEDS/elm/int4.elm" --backends cpu -o "$SEEDS/elm/compiled.elm" 2>/dev/null

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
mkdir -p "$BUILD/fuzz-crashes"
failed=""
for target in "$BUILD"/fuzz/fuzz_*; do
  name=$(basename "$target")
  kind=${name#fuzz_}
  corpus="$BUILD/fuzz-corpus/$name"
  mkdir -p "$corpus" "$SEEDS/$kind"
  echo "== $name: ${SECS}s"
  if ! "$target" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=262144 \
      -artifact_prefix="$BUILD/fuzz-crashes/$name-" -print_final_stats=1 "$corpus" "$SEEDS/$kind" 2>"$BUILD/fuzz-$name.log"; then
    tail -n 40 "$BUILD/fuzz-$name.log"
    failed="$failed $name"
  else
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$BUILD/fuzz-$name.log" || true
  fi
done
if [ -n "$failed" ]; then
  echo "fuzzing found problems in:$failed (inputs in $BUILD/fuzz-crashes)"
  exit 1
fi
echo "fuzzing: no problems found"
