// A loaded model: graph + weights + tokenizer + metadata, however it was stored (Hugging Face
// directory, .elm file, GGUF file). Everything downstream (sessions, server, tools) sees only this.
#pragma once
#include <map>
#include <optional>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "core/weight_store.h"
#include "graph/graph.h"
#include "tokenizer/tokenizer.h"

namespace elm {

struct ModelInfo {
  std::string family;          // config.json model_type, e.g. "llama", "gemma3_text"
  std::string name;            // a display name (directory or file stem)
  std::string source;          // where it was loaded or converted from
  int64_t vocab_size = 0;
  int64_t context_length = 0;  // max_position_embeddings
  int32_t bos_token_id = -1;
  std::vector<int32_t> eos_token_ids;
  nlohmann::json generation = nlohmann::json::object();  // generation_config.json sampling defaults

  nlohmann::json to_json() const;
  static ModelInfo from_json(const nlohmann::json& j);
  bool is_eos(int32_t id) const;
};

// Compiled-backend sections of a .elm file: per backend, the stored partition assignment (one entry
// per graph node, -1 for sources, index into `backends`) and one artifact per segment.
struct CompiledPlan {
  std::vector<std::string> backends;  // preference order the plan was made for, CPU last
  std::vector<int> node_backend;
  std::vector<std::span<const uint8_t>> artifacts;  // per segment, may be empty
};

// A self-draft `elm convert --self-draft` sliced into the file: the sub-model's graph (its narrowed
// tensors are ordinary tensors of the model's weight store) and the spec it was carved with.
struct StoredSelfDraft {
  std::string spec;  // SubModelSpec::to_string()
  Graph graph;
};

struct Model {
  Graph graph;
  WeightStore weights;
  ModelInfo info;
  std::shared_ptr<Tokenizer> tokenizer;  // null when the model came without one
  std::string chat_template;             // Jinja source, "" when none
  std::vector<CompiledPlan> compiled;    // from .elm files
  std::optional<StoredSelfDraft> self_draft;  // from .elm files converted with --self-draft

  // Loads a Hugging Face directory, a .elm file or a .gguf file. Throws elm::Error with a clear message
  // (missing files, malformed config, unsupported architecture, wrong tensor shapes...).
  static std::shared_ptr<Model> load(const std::string& path);
  // The KV cache type `auto` picks: F16 entries halve the cache at an error far below any non-f32
  // weight format's; a model kept entirely in f32 is presumably wanted exact, so its cache stays f32.
  DType auto_kv_dtype() const;
  static std::shared_ptr<Model> load_hf_dir(const std::string& dir);
};

// Fills info (ids, context, sampling defaults) from an HF directory's config.json and
// generation_config.json.
ModelInfo read_hf_model_info(const std::string& dir, const nlohmann::json& config);

}  // namespace elm
