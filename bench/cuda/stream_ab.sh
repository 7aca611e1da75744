#!/bin/bash
# The first GPU run after the streamed decode products (gemv_stream.cu) landed, in one device call
# (about 7 minutes): a smoke run of `elm run` with each kernel, every CUDA test in one process, tg128 /
# pp512 of llama3.2-1b and smollm2-1.7b with the register kernel and the streamed one side by side
# (ELM_CUDA_GEMV_STREAM=0|1, same warm GPU), speculative decoding's identity check (spec.sh) on the
# streamed kernel, then optional knob sweeps. Needs a bundle made with SPEC=1 (make_bundle.sh).
#   stream_ab.sh OUT        (from inside the bundle)
# Environment: QUANTS (int4-g32 int8), STREAMS (0 1), REPS (3), MODELS, SWEEP="A=1|B=2" (each setting
# measured on llama3.2-1b until SWEEP_UNTIL seconds), TEST_TIMEOUT (200), BENCH_ONLY=1, NOSPEC=1.
# If the smoke run fails with the streamed kernel, the rest runs on the register kernel only.
cd "$(dirname "$0")" || exit 1
O=$1; mkdir -p "$O"
TESTS='CudaOps.Rope*' bash run_h100.sh . "$O/unpack" tests > /dev/null 2>&1  # unpacks the binaries
export LD_LIBRARY_PATH=$PWD/lib ELM_SHARED_DIR=$PWD/shared
xz -dk models/ref-28m.elm.xz 2>/dev/null
ok=1
if [ -z "${BENCH_ONLY:-}" ]; then
  for st in 0 1; do
    s0=$SECONDS
    ELM_CUDA_GEMV_STREAM=$st timeout 30 ./bin/elm run -m models/ref-28m.elm --backend cuda -p "The President said that" \
      -n 64 --temp 0 -v > "$O/smoke$st.txt" 2>&1
    rc=$?
    echo "smoke stream=$st rc=$rc $((SECONDS - s0)) s $(md5sum < "$O/smoke$st.txt" | cut -c1-8)" \
      "$(grep -o 'generated.*' "$O/smoke$st.txt" | head -1)"
    [ $rc = 0 ] || ok=0
  done
fi
FILTER='*Cuda*'
if [ $ok = 0 ]; then
  echo "SMOKE FAILED: register kernel only"
  export STREAMS=0 NOSPEC=1
  FILTER='*Cuda*-CudaOps.DecodeProducts*'
fi
if [ -z "${BENCH_ONLY:-}" ]; then
  s0=$SECONDS
  timeout "${TEST_TIMEOUT:-200}" ./bin/elm_tests --gtest_filter="$FILTER" > "$O/tests.log" 2>&1
  echo "tests rc=$? $((SECONDS - s0)) s"
  grep -E "^\[  PASSED|^\[  FAILED|SKIPPED \]|Failure|Expected|Which is" "$O/tests.log" | head -30
fi
bench_line() {  # $1: label; stdin: elm-model-bench's JSON line (none when it failed: see bench.err)
  python3 -c "import json,sys
s = sys.stdin.read().strip()
if not s.startswith('{'): print('$1 failed: see bench.err'); sys.exit()
j = json.loads(s)
print(f\"$1 {j['model']:14s} {j['quant']:9s} pp512 {j['pp_tps']:8.0f} tg128 {j['tg_tps']:7.1f} greedy {j['tg_greedy_tps']:7.1f}\")"
}
echo "t=$SECONDS"
for m in ${MODELS:-llama3.2-1b smollm2-1.7b}; do
  [ -d /tmp/models/$m ] || python3 shared/tools/make_bench_model.py "$m" /tmp/models/$m \
    --tokenizer shared/tokenizers/smollm2 > /dev/null 2>&1
  for q in ${QUANTS:-int4-g32 int8}; do
    for st in ${STREAMS:-0 1}; do
      ELM_CUDA_GEMV_STREAM=$st timeout 100 ./bin/elm-model-bench -m /tmp/models/$m --backend cuda --quant "$q" \
        --act f16 --kv f16 -p 512 -n 128 -r "${REPS:-3}" -c 1024 2>> "$O/bench.err" | tail -1 |
        tee -a "$O/bench.jsonl" | bench_line "stream=$st"
    done
  done
done
echo "t=$SECONDS"
[ -n "${NOSPEC:-}${BENCH_ONLY:-}" ] || ELM_CUDA_GEMV_STREAM=1 timeout 100 bash spec.sh 2>&1 | tail -8
echo "t=$SECONDS"
IFS='|' read -ra sweep <<< "${SWEEP:-}"
for e in "${sweep[@]}"; do
  [ $SECONDS -lt "${SWEEP_UNTIL:-480}" ] || break
  for q in int4-g32 int8; do
    env ELM_CUDA_GEMV_STREAM=1 $e timeout 60 ./bin/elm-model-bench -m /tmp/models/llama3.2-1b --backend cuda --quant $q \
      --act f16 --kv f16 -p 512 -n 128 -r 3 -c 1024 2>> "$O/bench.err" | tail -1 | bench_line "$e"
  done
done
