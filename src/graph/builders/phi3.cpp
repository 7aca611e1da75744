// Phi-3: fused qkv and gate_up projections, partial rotary embedding.
#include "core/error.h"
#include "graph/builders/decoder.h"
#include "graph/builders/family.h"

namespace elm {

Graph build_phi3(const HfConfig& c, WeightStore& w) {
  DecoderSpec s = decoder_spec_from_config(c);
  s.qkv_fused = true;
  s.gate_up_fused = true;
  const RopeParams rope = c.rope();
  ELM_CHECK(rope.type == "default" || rope.type == "linear", "phi3: RoPE type '", rope.type,
            "' (long-context Phi-3) is not supported yet");
  if (c.has("sliding_window"))
    for (auto& l : s.layer) l.window = c.i("sliding_window");
  return build_decoder(s, w);
}

}  // namespace elm
