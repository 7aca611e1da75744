#!/bin/sh
# CPU speed of elm against llama.cpp on the same weights, measured in the same run.
#   bench/run_bench.sh [WORKDIR] [PRESETS] [THREADS]
# WORKDIR (default /tmp/elm-run-bench, outside the repository) receives, for every preset of
# ../shared/tools/make_bench_model.py in PRESETS (default "smollm2-360m smollm2-1.7b"): the random-weight
# Hugging Face checkpoint (real SmolLM2 tokenizer), its .elm conversions (int8, int4) and, when
# llama-quantize and llama-bench are on PATH, GGUF copies (bench/hf_to_gguf.py, then Q8_0 / Q4_0).
# Each elm file runs twice, as loaded by default (quantized weights packed at load for the AVX-512 /
# AVX2 / NEON kernels; `elm compile --backends cpu` stores the same packed copy in the file) and with
# --no-repack (read in place from the file's portable layout), back to back with its llama.cpp
# counterpart (`elm bench -p 128 -n 64 -r REPS`, `llama-bench -p 128 -n 64 -r REPS`), so a noisy
# machine affects both alike. Prints one markdown table; decode / roofline uses BW_GBS (default 75:
# the read bandwidth ../shared/peers.md measured on this machine type) and the bytes of the file, and
# decode / measured uses the read bandwidth build/bin/elm-membw measures at the start and the end of
# this run (the best of both): the machine's roofline on the day. DEPTH (default 1024; 0 skips) adds a
# decode test with that many tokens already in the KV cache (`-d`, both engines): long-context decode.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${ELM_SHARED_DIR:-$ROOT/../shared}
WORK=${1:-/tmp/elm-run-bench}
PRESETS=${2:-smollm2-360m smollm2-1.7b}
THREADS=${3:-2}
REPS=${REPS:-3}
DEPTH=${DEPTH:-1024}
BW_GBS=${BW_GBS:-75}
ELM=${ELM:-$ROOT/build/bin/elm}
[ -x "$ELM" ] || { echo "build elm first (cmake --build build): $ELM" >&2; exit 1; }
LLAMA=0
if command -v llama-bench >/dev/null && command -v llama-quantize >/dev/null; then LLAMA=1; fi
[ "$LLAMA" = 1 ] || echo "llama-bench / llama-quantize not on PATH: elm only" >&2
MEMBW=${MEMBW:-$ROOT/build/bin/elm-membw}
measure_bw() { if [ -x "$MEMBW" ]; then "$MEMBW" "$THREADS"; else echo 0; fi; }
mkdir -p "$WORK"
BW_START=$(measure_bw)
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

bench_elm() {  # preset label file depth [elm bench options]
  preset=$1 label=$2 file=$3 depth=$4
  shift 4
  tgd=0
  if [ "$depth" -gt 0 ]; then
    tgd=$("$ELM" bench -m "$file" -p 0 -n 64 -d "$depth" -r "$REPS" -t "$THREADS" -c $((depth + 64)) --json "$@" \
      2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["tg_tokens_per_s"])')
  fi
  "$ELM" bench -m "$file" -p 128 -n 64 -r "$REPS" -t "$THREADS" -c 256 --json "$@" 2>/dev/null |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print(json.dumps({"preset":sys.argv[1],"engine":"elm","type":sys.argv[2],"bytes":int(sys.argv[3]),"pp":j["pp_tokens_per_s"],"tg":j["tg_tokens_per_s"],"tg_depth":float(sys.argv[4]),"rss":j["peak_rss_mb"]}))' \
      "$preset" "$label" "$(stat -L -c %s "$file")" "$tgd" >>"$RESULTS"
}

bench_llama() {  # preset label file
  tgd=0
  if [ "$DEPTH" -gt 0 ]; then
    tgd=$(llama-bench -m "$3" -p 0 -n 64 -d "$DEPTH" -r "$REPS" -t "$THREADS" -o json 2>/dev/null |
      python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["avg_ts"])')
  fi
  llama-bench -m "$3" -p 128 -n 64 -r "$REPS" -t "$THREADS" -o json 2>/dev/null |
    python3 -c 'import json,sys
rows=json.load(sys.stdin); pp=[r["avg_ts"] for r in rows if r["n_prompt"]>0]; tg=[r["avg_ts"] for r in rows if r["n_gen"]>0]
print(json.dumps({"preset":sys.argv[1],"engine":"llama.cpp","type":sys.argv[2],"bytes":int(sys.argv[3]),"pp":pp[0],"tg":tg[0],"tg_depth":float(sys.argv[4])}))' \
      "$1" "$2" "$(stat -L -c %s "$3")" "$tgd" >>"$RESULTS"
}

for preset in $PRESETS; do
  HF="$WORK/$preset"
  if [ ! -f "$HF/model.safetensors" ]; then
    echo "== making $preset" >&2
    /usr/bin/python3 "$SHARED/tools/make_bench_model.py" "$preset" "$HF" --tokenizer "$SHARED/tokenizers/smollm2" >&2
  fi
  if [ "$LLAMA" = 1 ] && [ ! -f "$WORK/$preset-Q4_0.gguf" ]; then
    echo "== GGUF copies of $preset" >&2
    /usr/bin/python3 "$ROOT/bench/hf_to_gguf.py" "$HF" "$WORK/$preset-bf16.gguf" >&2
    for t in Q8_0 Q4_0; do llama-quantize "$WORK/$preset-bf16.gguf" "$WORK/$preset-$t.gguf" "$t" >/dev/null 2>&1; done
  fi
  for q in int8 int4; do
    plain="$WORK/$preset-$q.elm"
    [ -f "$plain" ] || "$ELM" convert "$HF" -o "$plain" --quant "$q" >/dev/null 2>&1
    echo "== $preset $q" >&2
    bench_elm "$preset" "$q" "$plain" "$DEPTH"
    bench_elm "$preset" "$q --no-repack" "$plain" 0 --no-repack
    if [ "$LLAMA" = 1 ]; then
      t=$([ "$q" = int8 ] && echo Q8_0 || echo Q4_0)
      bench_llama "$preset" "$t" "$WORK/$preset-$t.gguf"
    fi
  done
done

BW_END=$(measure_bw)
echo "read bandwidth, $THREADS threads (elm-membw): $BW_START GB/s at the start, $BW_END GB/s at the end" >&2
python3 - "$RESULTS" "$BW_GBS" "$BW_START" "$BW_END" "$DEPTH" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bw = float(sys.argv[2]) * 1e9
measured = max(float(sys.argv[3]), float(sys.argv[4])) * 1e9
depth = int(sys.argv[5])
peer = {"int8": "Q8_0", "int4": "Q4_0"}
print(f"| model | engine | type | file MiB | pp128 tok/s | tg64 tok/s | decode / roofline ({bw / 1e9:.0f} GB/s) | "
      f"decode / measured ({measured / 1e9:.1f} GB/s) | pp vs llama.cpp | tg vs llama.cpp |" +
      (f" tg64 @ d{depth} tok/s | vs llama.cpp |" if depth else ""))
print("|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if depth else ""))
for r in rows:
    ref = None
    if r["engine"] == "elm":
        ref = next((x for x in rows if x["engine"] == "llama.cpp" and x["preset"] == r["preset"]
                    and x["type"] == peer[r["type"].split()[0]]), None)
    weights = r["bytes"]
    ratio = lambda k: f"{r[k] / ref[k]:.2f}x" if ref else ""
    of_measured = f"{r['tg'] * weights / measured:.2f}" if measured > 0 else ""
    print(f"| {r['preset']} | {r['engine']} | {r['type']} | {r['bytes'] / 2**20:.0f} | {r['pp']:.1f} | {r['tg']:.1f} | "
          f"{r['tg'] * weights / bw:.2f} | {of_measured} | {ratio('pp')} | {ratio('tg')} |" +
          (f" {r['tg_depth']:.1f} | {ratio('tg_depth')} |" if depth and r.get("tg_depth") else (" | |" if depth else "")))
EOF
