#!/bin/sh
# The README's first command: installs what elm needs, builds it, converts the bundled model
# (models/stories260k, a 260K-parameter Llama trained on TinyStories) to one .elm file and generates
# text with it.
#   scripts/quickstart.sh [build-dir]
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
./scripts/install-deps.sh
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" --target elm_cli
"$BUILD/bin/elm" convert models/stories260k -o "$BUILD/stories260k.elm"
"$BUILD/bin/elm" run -m "$BUILD/stories260k.elm" -p "Once upon a time" -n 64 --temp 0
