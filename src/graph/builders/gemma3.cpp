// Gemma 3 (text): sliding and global layers with their own RoPE theta, (1 + w) RMSNorms, four norms
// per layer, q/k norms, query_pre_attn_scalar, embeddings scaled by sqrt(hidden), GELU-tanh MLP.
#include <cmath>

#include "core/error.h"
#include "graph/builders/decoder.h"
#include "graph/builders/family.h"

namespace elm {

Graph build_gemma3(const HfConfig& c, WeightStore& w) {
  DecoderSpec s = decoder_spec_from_config(c);
  s.qk_norm = true;
  s.norm_add_one = true;
  s.sandwich_norms = true;
  s.tied = c.b("tie_word_embeddings", true);
  s.embed_scale = std::sqrt(double(s.hidden));
  s.attn_scale = 1.0 / std::sqrt(c.f("query_pre_attn_scalar", double(s.head_dim)));
  s.attn_softcap = c.f("attn_logit_softcapping", 0.0);
  s.final_softcap = c.f("final_logit_softcapping", 0.0);
  if (s.activation == Op::Silu && !c.has("hidden_activation") && !c.has("hidden_act")) s.activation = Op::GeluTanh;

  std::vector<std::string> types = c.strings("layer_types");
  if (types.empty()) {  // older configs: every Nth layer is global
    const int64_t pattern = c.i("sliding_window_pattern", c.i("_sliding_window_pattern", 6));
    for (int64_t l = 0; l < s.layers; ++l)
      types.push_back((l + 1) % pattern == 0 ? "full_attention" : "sliding_attention");
  }
  ELM_CHECK(types.size() == size_t(s.layers), "config.json: layer_types needs one entry per layer");
  const int64_t window = c.i("sliding_window", 4096);
  const int64_t max_pos = c.i("max_position_embeddings", 131072);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string& t = types[size_t(l)];
    ELM_CHECK(t == "sliding_attention" || t == "full_attention", "gemma3: unknown layer type '", t, "'");
    RopeParams rope = c.rope(t);
    if (t == "sliding_attention" && !c.json().contains("rope_parameters") && c.has("rope_local_base_freq")) {
      rope.theta = c.f("rope_local_base_freq");  // transformers 4 spelling of the local theta
      rope.type = "default";
    }
    const int64_t rot = int64_t(double(s.head_dim) * rope.partial_rotary_factor);
    auto& ls = s.layer[size_t(l)];
    ls.inv_freq = rope_frequencies(rope, rot, max_pos, &ls.rope_attn_factor);
    ls.window = t == "sliding_attention" ? window : 0;
  }
  return build_decoder(s, w);
}

}  // namespace elm
