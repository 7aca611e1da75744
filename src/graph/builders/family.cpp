#include "graph/builders/family.h"

#include <map>

#include "core/error.h"

namespace elm {

namespace {
const std::map<std::string, FamilyBuilder>& families() {
  static const std::map<std::string, FamilyBuilder> f = {
      {"llama", build_llama},   {"mistral", build_llama},      {"smollm3", build_llama},
      {"qwen2", build_qwen},    {"qwen3", build_qwen},         {"phi3", build_phi3},
      {"gemma3", build_gemma3}, {"gemma3_text", build_gemma3},
      {"gemma3n", build_gemma3n}, {"gemma3n_text", build_gemma3n},
      {"gemma4", build_gemma4},   {"gemma4_text", build_gemma4},
      {"qwen3_5", build_qwen3_5}, {"qwen3_5_text", build_qwen3_5},
  };
  return f;
}
}  // namespace

std::string text_model_prefix(const WeightStore& w) {
  return w.has("model.language_model.embed_tokens.weight") ? "model.language_model." : "model.";
}

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const auto& [k, v] : families()) out.push_back(k);
  return out;
}

Graph build_from_hf(const HfConfig& config, WeightStore& weights) {
  const std::string type = config.model_type();
  auto it = families().find(type);
  if (it == families().end()) {
    std::string known;
    for (const auto& t : supported_model_types()) known += (known.empty() ? "" : ", ") + t;
    fail("unsupported model_type '", type, "' (elm supports: ", known, ")");
  }
  return it->second(config, weights);
}

}  // namespace elm
