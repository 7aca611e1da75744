#!/bin/sh
# Packs what one GPU run needs (binaries built here, the fixtures, the bench model maker, the smollm2
# tokenizer, the scripts) into DEST, for the device tool's `carry` (the GPU machine has no internet and
# lacks elm's build dependencies; the binaries link the CUDA runtime statically, and the other shared
# libraries they need travel in DEST/lib).
# Binaries travel xz-compressed (run_h100.sh unpacks them). BASE_BUILD=DIR adds that build's
# elm-model-bench as bin/elm-model-bench-base, for an A/B of two commits on the same warm GPU. SPEC=1
# adds what spec_h100.sh needs.
#   make_bundle.sh BUILD_DIR DEST
set -eu
BUILD=$1; DEST=$2
SRC=$(cd "$(dirname "$0")/../.." && pwd); SHARED=${ELM_SHARED_DIR:-$SRC/../shared}
rm -rf "$DEST"; mkdir -p "$DEST/bin" "$DEST/bench" "$DEST/shared/fixtures/tiny" "$DEST/shared/tokenizers" "$DEST/shared/tools"
for b in bin/elm-model-bench bin/elm_backend_decode tests/elm_tests; do strip -o "$DEST/bin/$(basename $b)" "$BUILD/$b"; done
[ -z "${BASE_BUILD:-}" ] || strip -o "$DEST/bin/elm-model-bench-base" "$BASE_BUILD/bin/elm-model-bench"
# Shared libraries the GPU machine lacks (utf8proc, PCRE2, httplib and what they pull in).
mkdir -p "$DEST/lib"
ldd "$BUILD/tests/elm_tests" "$BUILD/bin/elm_backend_decode" | awk '/=> \//{print $3}' | sort -u |
  grep -vE '/(libc|libm|libgcc_s|libstdc\+\+|libpthread|libdl|librt|ld-linux[^/]*)\.so' | xargs -r cp -L -t "$DEST/lib"
xz -T2 -3 "$DEST"/bin/* "$DEST"/lib/*
# The Vulkan loader for run_h100.sh's vulkan mode (the GPU machine has the driver but no loader):
# apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 into SRC/.gl first (the
# device README's recipe; NVIDIA's ICD, libGLX_nvidia, needs glvnd's libraries to start).
if ls "$SRC"/.gl/*.deb >/dev/null 2>&1; then mkdir -p "$DEST/gl" && cp "$SRC"/.gl/*.deb "$DEST/gl/"; fi
for f in llama llama3 mistral qwen2 qwen3 phi3 smollm3 gemma3; do cp -r "$SHARED/fixtures/tiny/$f" "$DEST/shared/fixtures/tiny/"; done
cp -r "$SHARED/tokenizers/smollm2" "$DEST/shared/tokenizers/"
cp "$SHARED/tools/make_bench_model.py" "$DEST/shared/tools/"
cp "$SRC/bench/plot.py" "$SRC/bench/cuda/ncu_summary.py" "$DEST/bench/"; cp "$SRC/bench/cuda/run_h100.sh" "$DEST/"
# SPEC=1: the elm CLI, ref-28m and ref-draft-14m converted to int4-g32, and spec_h100.sh (speculative
# decoding on the GPU).
if [ -n "${SPEC:-}" ]; then
  mkdir -p "$DEST/models" && strip -o "$DEST/bin/elm" "$BUILD/bin/elm" && xz -T2 -3 "$DEST/bin/elm"
  for m in ref-28m ref-draft-14m; do
    "$BUILD/bin/elm" convert "$SHARED/models/$m" -o "$DEST/models/$m.elm" --quant int4-g32 > /dev/null
    xz -T2 -6 "$DEST/models/$m.elm"
  done
  cp "$SRC/bench/cuda/spec_h100.sh" "$DEST/spec.sh"
  head -c 700 "$SHARED/text/heldout.txt" | sed 's/ [^ ]*$//' > "$DEST/heldout.txt"  # whole words
fi
du -sh "$DEST"
