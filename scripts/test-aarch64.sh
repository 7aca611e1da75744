#!/bin/sh
# Cross-compiles elm for aarch64 with Debian's g++-aarch64-linux-gnu and runs the CPU kernel tests
# under qemu-user, so the NEON kernels meet the same references as the x86 ones. Needs the packages
# of `scripts/install-deps.sh --aarch64`.
#   scripts/test-aarch64.sh [build-dir]
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build-aarch64}
JOBS=$(nproc 2>/dev/null || echo 2)

echo "== configure and build for aarch64 ($BUILD)"
# Only the CPU backend: no GPU backends, no server (cpp-httplib has no arm64 -dev package installed).
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DELM_BUILD_BENCH=OFF \
  -DELM_CUDA=OFF -DELM_VULKAN=OFF -DELM_SERVER=OFF -DELM_E2E=OFF \
  -DELM_TEST_ONLY='test_(attention|cpu_artifact|cpu_modes|fixtures|half|kernels|ops|quantize|thread_pool|vec_ops)\.cpp$' \
  -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
cmake --build "$BUILD" -j "$JOBS" --target elm_tests

echo "== kernel tests under qemu-aarch64"
# Kernels, vector math, attention and KV caches, thread pool, every op in the executor, the CPU
# modes and compile artifacts, and the transformers fixtures end to end.
qemu-aarch64 -L / "$BUILD/tests/elm_tests" \
  --gtest_filter='Isa/*:KvCache*:ThreadPool*:Ops.*:CpuModes*:CpuArtifact*:Quantize*:Half*:CoreFamilies/*'
