#!/bin/sh
# Packs what one GPU run needs (binaries built here, the fixtures, the bench model maker, the smollm2
# tokenizer, the scripts) into DEST, for the device tool's `carry` (the GPU machine has no internet and
# lacks elm's build dependencies; the binaries link the CUDA runtime statically and need only the driver).
#   make_bundle.sh BUILD_DIR DEST
set -eu
BUILD=$1; DEST=$2
SRC=$(cd "$(dirname "$0")/../.." && pwd); SHARED=${ELM_SHARED_DIR:-$SRC/../shared}
rm -rf "$DEST"; mkdir -p "$DEST/bin" "$DEST/bench" "$DEST/shared/fixtures/tiny" "$DEST/shared/tokenizers" "$DEST/shared/tools"
for b in bin/elm-model-bench tests/elm_tests; do strip -o "$DEST/bin/$(basename $b)" "$BUILD/$b"; done
for f in llama llama3 mistral qwen2 qwen3 phi3 smollm3 gemma3; do cp -r "$SHARED/fixtures/tiny/$f" "$DEST/shared/fixtures/tiny/"; done
cp -r "$SHARED/tokenizers/smollm2" "$DEST/shared/tokenizers/"
cp "$SHARED/tools/make_bench_model.py" "$DEST/shared/tools/"
cp "$SRC/bench/plot.py" "$SRC/bench/cuda/ncu_summary.py" "$DEST/bench/"; cp "$SRC/bench/cuda/run_h100.sh" "$DEST/"
du -sh "$DEST"
