#!/bin/sh
# Loading and first-token benchmark of .elm files on a 1.7B-class model (random weights, real shapes).
#   bench/elm_load_bench.sh [WORKDIR] [PRESET] [QUANTS]
# WORKDIR (default /work/tmp-bench/elm-format, outside the repository) receives the Hugging Face model
# made by ../shared/tools/make_bench_model.py (PRESET, default smollm2-1.7b, with the SmolLM2 tokenizer)
# and its .elm conversions (QUANTS, default "int4 int8 bf16"). For each file it reports:
#   convert time and file size;
#   resident memory right after loading (elm run --verbose): the weights are mapped, not read (the
#     CPU backend's packed copies are made when the session starts, after this point);
#   time from process start to the first token (elm run --verbose), run twice: cold(er) and warm cache;
#   peak resident memory of the whole run (/usr/bin/time).
# When llama-completion is on PATH and LLAMA_GGUFS names GGUF copies of the same weights, both engines
# are timed in the same run (below); otherwise compare with ../shared/peers.md (smollm2-1.7b: BF16
# 1724 ms, Q8_0 1209 ms, Q4_0 3812 ms from process start to first token, on this machine type).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${ELM_SHARED_DIR:-$ROOT/../shared}
WORK=${1:-/work/tmp-bench/elm-format}
PRESET=${2:-smollm2-1.7b}
QUANTS=${3:-int4 int8 bf16}
ELM=${ELM:-$ROOT/build/bin/elm}
PROMPT_IDS=${PROMPT_IDS:-1,9690,2115,253,655,28,665,1183,253,1345,2730,7276}  # 12 tokens
THREADS=${THREADS:-2}
CTX=${CTX:-512}  # context of the runs: the KV cache (f32, allocated up front) counts in peak RSS

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
    /usr/bin/time -f "peak_rss_kib %M" "$ELM" run -m "$2" --prompt-ids "$PROMPT_IDS" -n 4 --temp 0 -t "$THREADS" -c "$CTX" -v \
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
    /usr/bin/time -f "peak_rss_kib %M" "$ELM" convert "$HF" -o "$out" --quant "$q" 2>"$WORK/convert-$q.log"
    echo "== convert --quant $q: $(grep '^wrote' "$WORK/convert-$q.log")"
    echo "   peak RSS of the conversion: $(($(sed -n 's/^peak_rss_kib //p' "$WORK/convert-$q.log") / 1024)) MiB"
  fi
  echo "== $out: $(du -mL "$out" | cut -f1) MiB"
  measure "elm $q" "$out"
done

# Same run against llama.cpp: wall time of a whole process that reads the prompt and prints one token
# (process start to first token, plus exit), for elm and for llama-completion on the GGUF of the same
# weights, alternating, best of 3 each. LLAMA_GGUFS lists "quant=file.gguf" pairs, e.g.
#   LLAMA_GGUFS="int8=/x/smollm2-1.7b-Q8_0.gguf int4=/x/smollm2-1.7b-Q4_0.gguf"
PROMPT_TEXT=${PROMPT_TEXT:-"Once upon a time, there was a little girl who lived in a village near the forest."}
if command -v llama-completion >/dev/null && [ -n "${LLAMA_GGUFS:-}" ]; then
  echo "== process start to first token, same run (best of 3, seconds)"
  best() { sort -n | head -1; }
  for pair in $LLAMA_GGUFS; do
    q=${pair%%=*} gguf=${pair#*=} elm_file="$WORK/$PRESET-$q.elm"
    [ -f "$elm_file" ] || continue
    e="" l=""
    for i in 1 2 3; do
      /usr/bin/time -f "%e" -o "$WORK/time.txt" "$ELM" run -m "$elm_file" -p "$PROMPT_TEXT" -n 1 --temp 0 \
        -t "$THREADS" -c "$CTX" >/dev/null 2>&1
      e="$e $(cat "$WORK/time.txt")"
      /usr/bin/time -f "%e" -o "$WORK/time.txt" llama-completion -m "$gguf" -p "$PROMPT_TEXT" -n 1 --temp 0 \
        -t "$THREADS" -c "$CTX" -no-cnv --simple-io >/dev/null 2>&1
      l="$l $(cat "$WORK/time.txt")"
    done
    printf "%-6s elm %s s | llama.cpp (%s) %s s\n" "$q" "$(echo $e | tr ' ' '\n' | best)" "$(basename "$gguf")" \
      "$(echo $l | tr ' ' '\n' | best)"
  done
fi
