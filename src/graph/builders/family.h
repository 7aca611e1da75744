// Family builders: Hugging Face config + weights -> graph. One file per family registers a builder for
// its model_type values; build_from_hf dispatches on config.json's model_type.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/weight_store.h"
#include "graph/builders/hf_config.h"
#include "graph/graph.h"

namespace elm {

using FamilyBuilder = std::function<Graph(const HfConfig&, WeightStore&)>;

// Throws elm::Error listing the supported model types when model_type is unknown.
Graph build_from_hf(const HfConfig& config, WeightStore& weights);
std::vector<std::string> supported_model_types();

// Where a checkpoint keeps the language model's tensors: "model." (text-only *ForCausalLM) or
// "model.language_model." (multimodal *ForConditionalGeneration, read for its text part).
std::string text_model_prefix(const WeightStore& w);

// The families (defined in their own files).
Graph build_llama(const HfConfig& c, WeightStore& w);    // llama, mistral, smollm3
Graph build_qwen(const HfConfig& c, WeightStore& w);     // qwen2, qwen3
Graph build_phi3(const HfConfig& c, WeightStore& w);     // phi3
Graph build_gemma3(const HfConfig& c, WeightStore& w);   // gemma3_text, gemma3
Graph build_gemma3n(const HfConfig& c, WeightStore& w);  // gemma3n_text, gemma3n
Graph build_gemma4(const HfConfig& c, WeightStore& w);   // gemma4_text, gemma4
Graph build_qwen3_5(const HfConfig& c, WeightStore& w);  // qwen3_5_text, qwen3_5

}  // namespace elm
