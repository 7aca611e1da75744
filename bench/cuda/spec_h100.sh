#!/bin/bash
# Speculative decoding on the GPU: ref-28m target, ref-draft-14m draft (int4-g32), greedy, the same
# prompt plain, with the draft (whole, and scoring the first 16,384 / 8,192 ids) and with prompt lookup;
# each line: the output's md5 (all must match plain's), decode tok/s, acceptance. Needs a bundle made
# with SPEC=1 (make_bundle.sh: the elm CLI and the two converted models). REPS=2 repeats the sweep;
# BACKEND=vulkan runs it on Vulkan.
#   spec_h100.sh   (from inside the bundle)
B=$(cd "$(dirname "$0")" && pwd); export LD_LIBRARY_PATH=$B/lib
for z in $B/bin/*.xz; do [ -e "$z" ] && xz -d "$z" && chmod +x "${z%.xz}"; done
for z in $B/models/*.xz; do [ -e "${z%.xz}" ] || xz -dk "$z"; done
T=$B/models/ref-28m.elm; D=$B/models/ref-draft-14m.elm
# Prompts: "The President said that" (greedy output turns repetitive: lookup's case) and, when the bundle
# has it (make_bundle.sh SPEC=1), the start of the held-out text ref-28m never saw (ordinary text: the
# draft model's case). Outputs are compared per prompt.
prompts=("The President said that")
[ -f "$B/heldout.txt" ] && prompts+=("$(cat "$B/heldout.txt")")
backend=${BACKEND:-cuda}
bad=0
for p in "${prompts[@]}"; do
  echo "== prompt: ${p:0:48}..."
  sums=""
  for rep in $(seq ${REPS:-1}); do
  for v in "" "--draft $D" "--draft $D --draft-vocab 16384" "--draft $D --draft-vocab 8192" "--draft $D --draft-vocab 8192 --draft-max 3 --draft-fixed" "--lookup 3"; do
    out=$($B/bin/elm run -m $T --backend $backend -p "$p" -n 256 --temp 0 -c 1024 -v $v 2>&1 >/tmp/o.txt | grep -E "generated|acceptance" | tr '\n' ' ')
    sum=$(md5sum < /tmp/o.txt | cut -c1-8); sums="$sums $sum"
    echo "[$v] $sum $out" | sed -e "s#$B/models/##g" -e 's/prompt: [^|]*| //'
  done; done
  # Greedy speculation must reproduce plain decoding token for token.
  if [ $(echo $sums | tr ' ' '\n' | sort -u | wc -l) -eq 1 ]; then echo "all outputs identical"; else echo "OUTPUTS DIFFER"; bad=1; fi
done
exit $bad
