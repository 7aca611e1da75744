#!/bin/sh
# Installs what elm needs, builds it, and runs every test suite. This is what CI runs (.ci/run).
#   scripts/test-all.sh [build-dir]
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
