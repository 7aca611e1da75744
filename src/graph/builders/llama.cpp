// Llama 2/3 (incl. llama3 RoPE scaling), Mistral (sliding window on every layer), SmolLM3 (RoPE
// skipped on the layers no_rope_layers marks 0).
#include "core/error.h"
#include "graph/builders/decoder.h"
#include "graph/builders/family.h"

namespace elm {

Graph build_llama(const HfConfig& c, WeightStore& w) {
  DecoderSpec s = decoder_spec_from_config(c);
  ELM_CHECK(!c.b("attention_bias", false) && !c.b("mlp_bias", false), c.model_type(),
            ": attention_bias / mlp_bias checkpoints are not supported yet");
  const std::string type = c.model_type();
  if (type == "mistral" && c.has("sliding_window")) {
    for (auto& l : s.layer) l.window = c.i("sliding_window");
  }
  if (type == "smollm3") {
    std::vector<int64_t> use_rope = c.ints("no_rope_layers");
    if (use_rope.empty()) {  // derived from the interval, as transformers does
      const int64_t every = c.i("no_rope_layer_interval", 4);
      for (int64_t l = 0; l < s.layers; ++l) use_rope.push_back((l + 1) % every != 0);
    }
    ELM_CHECK(use_rope.size() == size_t(s.layers), "config.json: no_rope_layers needs one entry per layer");
    for (int64_t l = 0; l < s.layers; ++l)
      if (!use_rope[size_t(l)]) s.layer[size_t(l)].inv_freq.clear();
    if (c.b("use_sliding_window", false) && c.has("sliding_window"))
      for (auto& l : s.layer) l.window = c.i("sliding_window");
  }
  return build_decoder(s, w);
}

}  // namespace elm
