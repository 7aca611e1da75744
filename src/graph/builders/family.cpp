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
  };
  return f;
}
}  // namespace

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
