// Qwen2 / Qwen2.5 (biases on q, k, v) and Qwen3 (per-head RMSNorm of q and k).
#include "core/error.h"
#include "graph/builders/decoder.h"
#include "graph/builders/family.h"

namespace elm {

Graph build_qwen(const HfConfig& c, WeightStore& w) {
  DecoderSpec s = decoder_spec_from_config(c);
  const std::string type = c.model_type();
  if (type == "qwen2") s.qkv_bias = true;
  if (type == "qwen3") {
    s.qk_norm = true;
    ELM_CHECK(!c.b("attention_bias", false), "qwen3: attention_bias checkpoints are not supported yet");
  }
  // Sliding windows apply only with use_sliding_window, to layers from max_window_layers on, or as
  // layer_types says.
  if (c.b("use_sliding_window", false) && c.has("sliding_window")) {
    const std::vector<std::string> types = c.strings("layer_types");
    const int64_t first = c.i("max_window_layers", s.layers);
    for (int64_t l = 0; l < s.layers; ++l) {
      const bool sliding = types.size() == size_t(s.layers) ? types[size_t(l)] == "sliding_attention" : l >= first;
      if (sliding) s.layer[size_t(l)].window = c.i("sliding_window");
    }
  }
  return build_decoder(s, w);
}

}  // namespace elm
