#!/bin/bash
# The first GPU run after the streamed decode products (gemv_stream.cu) landed, in one device call
# (about 7 minutes): a smoke run of `elm run` with each kernel, every CUDA test in one process, then
# run_h100.sh's benchmarks of llama3.2-1b and smollm2-1.7b with the register kernel and the streamed one
# side by side (BENCH_ENV="ELM_CUDA_GEMV_STREAM=0|ELM_CUDA_GEMV_STREAM=1", same warm GPU), speculative
# decoding's identity check (spec.sh) on the streamed kernel, then optional knob sweeps. Needs a bundle
# made with SPEC=1 (make_bundle.sh).
#   stream_ab.sh OUT        (from inside the bundle)
# Environment: QUANTS (int4-g32 int8), REPS (3), SWEEP="A=1|A=2 B=3" (each setting with the streamed
# kernel on llama3.2-1b), TEST_TIMEOUT (200), BENCH_ONLY=1, NOSPEC=1.
# If the smoke run fails with the streamed kernel, the rest runs on the register kernel only.
cd "$(dirname "$0")" || exit 1
O=$1; mkdir -p "$O"
bash run_h100.sh . "$O/unpack" none > /dev/null 2>&1  # unpacks the binaries (no mode: nothing else)
export LD_LIBRARY_PATH=$PWD/lib ELM_SHARED_DIR=$PWD/shared QUANTS=${QUANTS:-int4-g32 int8} REPS=${REPS:-3}
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
FILTER='*Cuda*' AB="ELM_CUDA_GEMV_STREAM=0|ELM_CUDA_GEMV_STREAM=1"
if [ $ok = 0 ]; then
  echo "SMOKE FAILED: register kernel only"
  NOSPEC=1 SWEEP="" AB="ELM_CUDA_GEMV_STREAM=0" FILTER='*Cuda*-CudaOps.DecodeProducts*'
fi
if [ -z "${BENCH_ONLY:-}" ]; then
  s0=$SECONDS
  timeout "${TEST_TIMEOUT:-200}" ./bin/elm_tests --gtest_filter="$FILTER" > "$O/tests.log" 2>&1
  echo "tests rc=$? $((SECONDS - s0)) s"
  grep -E "^\[  PASSED|^\[  FAILED|SKIPPED \]|Failure|Expected|Which is" "$O/tests.log" | head -30
fi
echo "t=$SECONDS"
BENCH_ENV=$AB bash run_h100.sh . "$O/bench" bench 2>&1 | grep -v "^name,\|NVIDIA"
echo "t=$SECONDS"
[ -n "${NOSPEC:-}${BENCH_ONLY:-}" ] || ELM_CUDA_GEMV_STREAM=1 timeout 100 bash spec.sh 2>&1 | tail -8
echo "t=$SECONDS"
[ -z "${SWEEP:-}" ] || ELM_CUDA_GEMV_STREAM=1 BENCH_ENV=$SWEEP bash run_h100.sh . "$O/sweep" bench llama3.2-1b 2>&1 |
  grep -v "^name,\|NVIDIA"
