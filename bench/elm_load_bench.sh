#!/bin/sh
# Loading and first-token benchmark of .elm files on a 1.7B-class model (random weights, real shapes).
#   bench/elm_load_bench.sh [WORKDIR] [PRESET] [QUANTS]
# WORKDIR (default /work/tmp-bench/elm-format, outside the repository) receives the Hugging Face model
# made by ../shared/tools/make_bench_model.py (PRESET, default smollm2-1.7b, with the SmolLM2 tokenizer)
# and its .elm conversions (QUANTS, default "int4 int8 bf16"). For each file it reports:
#   convert time and file size;
#   resident memory right after loading (elm run --verbose): the weights are mapped, not read, so this
#     must stay far below the file size;
#   time from process start to the first token (elm run --verbose), run twice: cold(er) and warm cache;
#   peak resident memory of the whole run (/usr/bin/time).
# When llama-cli is on PATH the same is measured for llama.cpp on a GGUF given as
# LLAMA_GGUF; otherwise compare with ../shared/peers.md (smollm2-1.7b: BF16 1724 ms, Q8_0 1209 ms,
# Q4_0 3812 ms from process start to first token, on this machine type).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${ELM_SHARED_DIR:-$ROOT/../shared}
WORK=${1:-/work/tmp-bench/elm-format}
PRESET=${2:-smollm2-1.7b}
QUANTS=${3:-int4 int8 bf16}
ELM=${ELM:-$ROOT/build/bin/elm}
PROMPT_IDS=${PROMPT_IDS:-1,9690,2115,253,655,28,665,1183,253,1345,2730,7276}  # 12 tokens
THREADS=${THREADS:-2}

[ -x "$ELM" ] || { echo "build elm first (cmake --build build): $ELM" >&2; exit 1; }
mkdir -p "$WORK"
HF="$WORK/$PRESET-hf"
if [ ! -f "$HF/model.safetensors" ]; then
  echo "== making $PRESET in $HF"
  /usr/bin/python3 "$SHARED/tools/make_bench_model.py" "$PRESET" "$HF" --tokenizer "$SHARED/tokenizers/smollm2"
fi
echo "== $PRESET: HF checkpoint $(du -m "$HF/model.safetensors" | cut -f1) MiB (bf16)"

measure() {  # label file
  log="$WORK/run.log"
  for pass in cold warm; do
    /usr/bin/time -f "peak_rss_kib %M" "$ELM" run -m "$2" --prompt-ids "$PROMPT_IDS" -n 4 --temp 0 -t "$THREADS" -v \
      >/dev/null 2>"$log"
    load=$(sed -n 's/^loaded .* in \([0-9.]*\) ms: resident \([0-9.]* [KMG]iB\).*/\1 ms, resident after load \2/p' "$log")
    ttft=$(sed -n 's/^time to first token: \([0-9.]*\) ms.*/\1/p' "$log")
    peak=$(sed -n 's/^peak_rss_kib \([0-9]*\)/\1/p' "$log")
    printf "%-24s %-5s load %s | first token %s ms | peak RSS %s MiB\n" "$1" "$pass" "$load" "$ttft" "$((peak / 1024))"
  done
}

for q in $QUANTS; do
  out="$WORK/$PRESET-$q.elm"
  if [ ! -f "$out" ]; then
    start=$(date +%s.%N)
    "$ELM" convert "$HF" -o "$out" --quant "$q" 2>"$WORK/convert-$q.log"
    end=$(date +%s.%N)
    echo "== convert --quant $q: $(tail -n 1 "$WORK/convert-$q.log")"
    echo "   wall $(echo "$end - $start" | bc) s"
  fi
  echo "== $out: $(du -m "$out" | cut -f1) MiB"
  measure "elm $q" "$out"
done

if command -v llama-cli >/dev/null && [ -n "${LLAMA_GGUF:-}" ]; then
  echo "== llama.cpp (llama-cli) on $LLAMA_GGUF"
  /usr/bin/time -f "peak RSS %M KiB, wall %e s" llama-cli -m "$LLAMA_GGUF" -p "Once upon a time" -n 1 -t "$THREADS" \
    -no-cnv 2>&1 | grep -E "load time|prompt eval time|peak RSS" || true
fi
