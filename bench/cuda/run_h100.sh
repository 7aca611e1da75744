#!/bin/bash
# One batched run on the GPU machine: CUDA tests, then decode / prefill benchmarks of the random-weight
# models (bench/cuda/README.md). Expects a bundle made by bench/cuda/make_bundle.sh:
#   BUNDLE/bin/{elm-model-bench,elm_backend_decode,elm_tests}(.xz)  BUNDLE/lib  BUNDLE/gl (optional)
#   BUNDLE/shared/{fixtures/tiny,tokenizers/smollm2,tools}
#   run_h100.sh BUNDLE OUT [tests|bench|profile|vulkan|all] [models...]
set -u
BUNDLE=$(cd "$1" && pwd); OUT=$2; WHAT=${3:-all}; shift 3 2>/dev/null || shift $#
MODELS=${*:-"llama3.2-1b smollm2-1.7b"}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for z in "$BUNDLE"/bin/*.xz "$BUNDLE"/lib/*.xz; do  # make_bundle.sh compresses the binaries
  [ -e "$z" ] || continue
  xz -d "$z" 2>/dev/null || python3 -c "import lzma,sys; open(sys.argv[1][:-3],'wb').write(lzma.open(sys.argv[1]).read())" "$z"
  rm -f "$z"; case $z in */bin/*) chmod +x "${z%.xz}";; esac
done
BIN=$BUNDLE/bin/${BENCH_BIN:-elm-model-bench}  # BENCH_BIN=elm-model-bench-base: the baseline of an A/B
nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
export ELM_SHARED_DIR=$BUNDLE/shared

if [ "$WHAT" = tests ] || [ "$WHAT" = all ]; then
  echo "== CUDA tests (one process per test, so a device fault stays with its test)"
  cd "$BUNDLE"
  ./bin/elm_tests --gtest_list_tests --gtest_filter="${TESTS:-*Cuda*}" | awk '/^[^ ]/{s=$1} /^  /{print s $1}' > "$OUT/tests.txt"
  pass=0; fail=0
  while read -r t; do
    if timeout 120 ./bin/elm_tests --gtest_filter="$t" > "$OUT/t.log" 2>&1; then
      pass=$((pass+1)); grep -q SKIPPED "$OUT/t.log" && echo "SKIP $t"
    else
      fail=$((fail+1)); echo "FAIL $t"; cat "$OUT/t.log" >> "$OUT/tests_failed.log"
      grep -E "Failure|error|Expected|Which is|<|rel|CUDA" "$OUT/t.log" | head -12
      if grep -q "CUDA error\|illegal\|misaligned" "$OUT/t.log"; then
        timeout 240 compute-sanitizer --tool memcheck --print-limit 5 ./bin/elm_tests --gtest_filter="$t" \
          > "$OUT/sanitizer_$fail.log" 2>&1; grep -A8 "=========" "$OUT/sanitizer_$fail.log" | head -30
      fi
    fi
  done < "$OUT/tests.txt"
  rm -f "$OUT/t.log"; cd - > /dev/null
  echo "tests: $pass passed, $fail failed"
fi

if [ "$WHAT" = bench ] || [ "$WHAT" = all ]; then
  echo "== benchmarks"
  for m in $MODELS; do
    [ -d /tmp/models/$m ] || python3 "$BUNDLE/shared/tools/make_bench_model.py" "$m" /tmp/models/$m \
      --tokenizer "$BUNDLE/shared/tokenizers/smollm2" || exit 1
    for q in ${QUANTS:-int4 int8 int4-g32}; do
      # BENCH_ENV="A=0|A=1": one measurement per setting, side by side (an A/B of a knob on one warm GPU).
      IFS='|' read -ra envs <<< "${BENCH_ENV:-}"; [ ${#envs[@]} -gt 0 ] || envs=("")
      for e in "${envs[@]}"; do
        env $e timeout 240 "$BIN" -m /tmp/models/$m --backend cuda --quant $q --act ${ACT:-f16} \
          --kv f16 -p 512 -n 128 -r ${REPS:-5} -c 1024 >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err" || echo "bench $m $q failed: $?"
        tail -1 "$OUT/bench.jsonl" | python3 -c "import json,sys; j=json.loads(sys.stdin.read());
print(f\"$(basename $BIN) $e {j['model']:14s} {j['quant']:9s} pp512 {j['pp_tps']:9.0f} tok/s  tg128 {j['tg_tps']:7.1f} tok/s \
greedy {j['tg_greedy_tps']:7.1f}  weights {j['weight_bytes']/2**20:6.0f} MiB  gpu mem {j['gpu_mem_elm']/2**20:6.0f} MiB\")"
      done
    done
  done
  python3 "$BUNDLE/bench/plot.py" "$OUT/bench.jsonl" "$OUT" || true
fi

if [ "$WHAT" = profile ] || [ "$WHAT" = all ]; then
  # Kernel by kernel (ncu, real clocks, warm caches): a prefill of 512 tokens, then decode steps.
  # PROFILE_PATH=FILE profiles a converted model instead (e.g. a SPEC=1 bundle's models/ref-28m.elm.xz).
  m=${PROFILE_MODEL:-llama3.2-1b}; mp=/tmp/models/$m; pq=${PROFILE_QUANT:-int4}
  if [ -n "${PROFILE_PATH:-}" ]; then
    mp=$PROFILE_PATH; pq=none
    case $mp in *.xz) [ -e "${mp%.xz}" ] || xz -dk "$mp"; mp=${mp%.xz};; esac
  else
    [ -d $mp ] || python3 "$BUNDLE/shared/tools/make_bench_model.py" "$m" $mp \
      --tokenizer "$BUNDLE/shared/tokenizers/smollm2"
  fi
  NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  for phase in ${PROFILE_PHASES:-prefill decode}; do
    if [ $phase = prefill ]; then args="-p 512 -n 1"; count=320; else args="-p 8 -n 3"; count=280; fi
    echo "== profile: $phase ($mp $pq)"
    timeout 300 $NCU --clock-control none --cache-control none --graph-profiling node \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv -c $count \
      "$BIN" -m $mp --backend cuda --quant $pq --act f16 \
      --kv f16 $args -r 0 -c 1024 > "$OUT/ncu_$phase.csv" 2> "$OUT/ncu_$phase.err"
    python3 "$BUNDLE/bench/ncu_summary.py" "$OUT/ncu_$phase.csv" > "$OUT/ncu_$phase.txt"
    grep -A14 "^step" "$OUT/ncu_$phase.txt" | head -${PROFILE_LINES:-40}
  done
  if [ -n "${PROFILE_DETAIL:-}" ]; then
    # Limiters of single kernels (throughputs, occupancy, stall reasons), e.g. PROFILE_DETAIL=gemv_kernel.
    echo "== detail: $PROFILE_DETAIL"
    timeout 240 $NCU --clock-control none --cache-control none --graph-profiling node -k regex:$PROFILE_DETAIL \
      --launch-skip ${DETAIL_SKIP:-0} -c ${DETAIL_COUNT:-3} --section SpeedOfLight --section Occupancy \
      --section WarpStateStats --section LaunchStats "$BIN" -m $mp --backend cuda \
      --quant $pq --act f16 --kv f16 -p 8 -n 3 -r 0 -c 1024 > "$OUT/ncu_detail.txt" 2>&1
    grep -E "gemv_kernel|attn_|Duration|Memory Throughput|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|Stall|Warp Cycles Per Issued|Issued Warp" \
      "$OUT/ncu_detail.txt" | grep -v "^    ---" | head -${DETAIL_LINES:-80}
  fi
fi

if [ "$WHAT" = vulkan ]; then
  # Vulkan on the NVIDIA driver: the carried loader (make_bundle.sh), the Vulkan tests, then decode of
  # smollm2-1.7b int4 on CUDA and Vulkan (elm_backend_decode). VK_SWEEP: sweeps of the Vulkan measurement
  # separated by ';', each VAR=a|b|c (one measurement per value, the last value staying set for the next
  # sweep), e.g. "ELM_VULKAN_INT8=0|1;ELM_VULKAN_MATVEC=2,8|4,8". VK_PROFILE=1: then one more run with
  # ELM_VULKAN_PROFILE=1 (GPU time per kernel) and --check 8 (logits against the CPU). VK_PROMPT (128),
  # VK_GEN (128), VK_CTX (1024), VK_REPEAT (3): the measurement's shape; VK_TESTS=- skips the tests,
  # VK_BACKENDS=none the measurements (for a profile alone).
  for f in "$BUNDLE"/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ "${VK_TESTS:-}" = - ] ||
    (cd "$BUNDLE" && ./bin/elm_tests --gtest_filter="${VK_TESTS:-*Vulkan*}" > "$OUT/vulkan_tests.log" 2>&1
     grep -E "^\[  (PASSED|FAILED)|SKIPPED|Failure|Which is|actual" "$OUT/vulkan_tests.log" | head -30)
  m=${VK_MODEL:-smollm2-1.7b}
  [ -d /tmp/models/$m ] || python3 "$BUNDLE/shared/tools/make_bench_model.py" "$m" /tmp/models/$m \
    --tokenizer "$BUNDLE/shared/tokenizers/smollm2"
  # Both with f16 cache entries; CUDA also with f16 activations, as its bench figures (Vulkan keeps f32).
  dec() { timeout 300 "$BUNDLE/bin/elm_backend_decode" -m /tmp/models/$m --quant int4 --prompt "${VK_PROMPT:-128}" \
            --gen "${VK_GEN:-128}" -c "${VK_CTX:-1024}" --kv f16 "$@" 2>&1; }
  for b in ${VK_BACKENDS:-cuda vulkan}; do
    [ "$b" = none ] && continue
    sweep=()
    if [ "$b" = vulkan ] && [ -n "${VK_SWEEP:-}" ]; then
      IFS=';' read -ra ss <<< "$VK_SWEEP"; for x in "${ss[@]}"; do sweep+=(--sweep "$x"); done
    fi
    act=f32; [ "$b" = cuda ] && act=f16
    echo "== $b"
    dec --backend $b --repeat "${VK_REPEAT:-3}" --act $act "${sweep[@]}" | grep -E "median|sweep|vulkan device|error|=" | head -40
  done
  if [ -n "${VK_PROFILE:-}" ]; then
    echo "== vulkan profile"
    ELM_VULKAN_PROFILE=1 dec --backend vulkan --repeat 1 --act f32 --check 8 | grep -v "^repeat" | head -60
  fi
fi
