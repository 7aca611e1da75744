#include "runtime/model.h"

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "format/elm_file.h"
#include "format/gguf_import.h"
#include "format/safetensors.h"
#include "graph/builders/family.h"

namespace elm {

namespace fs = std::filesystem;

nlohmann::json ModelInfo::to_json() const {
  return {{"family", family},         {"name", name},
          {"source", source},         {"vocab_size", vocab_size},
          {"context_length", context_length}, {"bos_token_id", bos_token_id},
          {"eos_token_ids", eos_token_ids},   {"generation", generation}};
}

ModelInfo ModelInfo::from_json(const nlohmann::json& j) {
  try {
    ModelInfo m;
    m.family = j.at("family").get<std::string>();
    m.name = j.value("name", "");
    m.source = j.value("source", "");
    m.vocab_size = j.at("vocab_size").get<int64_t>();
    m.context_length = j.at("context_length").get<int64_t>();
    m.bos_token_id = j.value("bos_token_id", -1);
    m.eos_token_ids = j.value("eos_token_ids", std::vector<int32_t>{});
    m.generation = j.value("generation", nlohmann::json::object());
    return m;
  } catch (const nlohmann::json::exception& e) {
    fail("model metadata is malformed: ", e.what());
  }
}

bool ModelInfo::is_eos(int32_t id) const {
  for (int32_t e : eos_token_ids)
    if (e == id) return true;
  return false;
}

namespace {
void add_ids(const nlohmann::json& v, std::vector<int32_t>& out) {
  if (v.is_number_integer()) out.push_back(v.get<int32_t>());
  if (v.is_array())
    for (const auto& e : v)
      if (e.is_number_integer()) out.push_back(e.get<int32_t>());
}
}  // namespace

ModelInfo read_hf_model_info(const std::string& dir, const nlohmann::json& config) {
  ModelInfo m;
  nlohmann::json c = config.contains("text_config") && !config.contains("num_hidden_layers") ? config["text_config"]
                                                                                               : config;
  m.family = c.value("model_type", "");
  m.name = fs::path(dir).filename().string();
  if (m.name.empty() || m.name == "hf") m.name = fs::path(dir).parent_path().filename().string();
  m.source = dir;
  m.vocab_size = c.value("vocab_size", int64_t(0));
  m.context_length = c.value("max_position_embeddings", int64_t(4096));
  if (config.contains("bos_token_id") && config["bos_token_id"].is_number_integer())
    m.bos_token_id = config["bos_token_id"].get<int32_t>();
  if (config.contains("eos_token_id")) add_ids(config["eos_token_id"], m.eos_token_ids);
  const fs::path gen = fs::path(dir) / "generation_config.json";
  if (fs::exists(gen)) {
    nlohmann::json g = nlohmann::json::parse(read_text_file(gen.string()), nullptr, false);
    ELM_CHECK(!g.is_discarded() && g.is_object(), gen.string(), ": malformed JSON");
    if (g.contains("eos_token_id")) {  // generation_config's list is the authoritative stop set
      std::vector<int32_t> eos;
      add_ids(g["eos_token_id"], eos);
      for (int32_t e : eos)
        if (!m.is_eos(e)) m.eos_token_ids.push_back(e);
    }
    if (g.contains("bos_token_id") && g["bos_token_id"].is_number_integer() && m.bos_token_id < 0)
      m.bos_token_id = g["bos_token_id"].get<int32_t>();
    for (const char* k : {"temperature", "top_p", "top_k", "min_p", "repetition_penalty", "do_sample"})
      if (g.contains(k) && !g[k].is_null()) m.generation[k] = g[k];
  }
  return m;
}

std::shared_ptr<Model> Model::load_hf_dir(const std::string& dir) {
  const fs::path cfg_path = fs::path(dir) / "config.json";
  ELM_CHECK(fs::exists(cfg_path), dir, ": not a Hugging Face model directory (no config.json)");
  HfConfig config = HfConfig::from_file(cfg_path.string());
  auto m = std::make_shared<Model>();
  SafetensorsSet st = SafetensorsSet::open_dir(dir);
  for (const auto& [name, view] : st.tensors) m->weights.add(name, view);
  for (auto& f : st.files) m->weights.keep_mapped(f);
  try {
    m->graph = build_from_hf(config, m->weights);
  } catch (const Error& e) {
    fail(dir, ": ", e.what());
  }
  m->info = read_hf_model_info(dir, config.json());
  m->info.vocab_size = m->graph.nodes[size_t(m->graph.output)].cols;
  if (fs::exists(fs::path(dir) / "tokenizer.json")) {
    m->tokenizer = Tokenizer::from_dir(dir);  // a broken tokenizer.json is an error, not a silent null
    m->chat_template = m->tokenizer->chat_template();
    if (m->info.bos_token_id < 0) m->info.bos_token_id = m->tokenizer->bos_id();
    if (m->info.eos_token_ids.empty() && m->tokenizer->eos_id() >= 0)
      m->info.eos_token_ids.push_back(m->tokenizer->eos_id());
  }
  return m;
}

std::shared_ptr<Model> Model::load(const std::string& path) {
  ELM_CHECK(fs::exists(path), "model '", path, "' does not exist");
  if (fs::is_directory(path)) return load_hf_dir(path);
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".gguf") return load_gguf(path);
  if (ext == ".elm") return load_elm(path);
  // Unknown extension: sniff the magic.
  auto f = MappedFile::open(path);
  if (f->size() >= 4 && std::memcmp(f->data(), "GGUF", 4) == 0) return load_gguf(path);
  return load_elm(path);
}

DType Model::auto_kv_dtype() const {
  for (const Node& n : graph.nodes)
    if (n.op == Op::MatMul && weights.get(graph.nodes[size_t(n.inputs[1])].name).dtype != DType::F32) return DType::F16;
  return DType::F32;
}

}  // namespace elm
