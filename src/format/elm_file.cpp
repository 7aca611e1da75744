#include "format/elm_file.h"

#include <nlohmann/json.hpp>

#include "backend/partition.h"
#include "core/error.h"
#include "runtime/model.h"

namespace elm {

namespace {

nlohmann::json parse_json_section(const ElmFile& f, int i) {
  const std::string_view t = f.text(size_t(i));
  nlohmann::json j = nlohmann::json::parse(t.begin(), t.end(), nullptr, /*allow_exceptions=*/false);
  ELM_CHECK(!j.is_discarded() && j.is_object(), f.label(), ": ", section_kind_name(f.sections[size_t(i)].kind),
            " section is not a JSON object");
  return j;
}

CompiledPlan read_plan(const ElmFile& f, int i, const Graph& g) {
  const nlohmann::json j = parse_json_section(f, i);
  auto bad = [&](auto&&... a) { fail(f.label(), ": compiled plan (section ", i, "): ", a...); };
  CompiledPlan p;
  try {
    p.backends = j.at("backends").get<std::vector<std::string>>();
    p.node_backend = j.at("node_backend").get<std::vector<int>>();
    const auto artifacts = j.at("artifacts").get<std::vector<int64_t>>();
    if (p.backends.empty() || p.backends.size() > 16) bad(p.backends.size(), " backends");
    PartitionPlan plan;
    try {
      plan = plan_from_assignment(g, p.node_backend, p.backends.size());
    } catch (const Error& e) {
      bad(e.what());
    }
    if (artifacts.size() != plan.segments.size())
      bad(artifacts.size(), " artifacts for ", plan.segments.size(), " segments");
    for (int64_t a : artifacts) {
      if (a < 0) {
        p.artifacts.emplace_back();
        continue;
      }
      if (a >= int64_t(f.sections.size()) || f.sections[size_t(a)].kind != uint32_t(SectionKind::Artifact))
        bad("artifact ", a, " is not an artifact section");
      p.artifacts.push_back(f.bytes(size_t(a)));
    }
  } catch (const nlohmann::json::exception& e) {
    bad("malformed: ", e.what());
  }
  return p;
}

}  // namespace

std::shared_ptr<Model> model_from_elm(const ElmFile& f) {
  auto m = std::make_shared<Model>();
  const nlohmann::json meta = parse_json_section(f, f.find(SectionKind::Meta));
  ELM_CHECK(meta.contains("info"), f.label(), ": meta section has no model info");
  try {
    m->info = ModelInfo::from_json(meta["info"]);
  } catch (const Error& e) {
    fail(f.label(), ": ", e.what());
  }
  for (const TensorEntry& t : f.tensors) m->weights.add(t.name, t.view);
  if (f.file) m->weights.keep_mapped(f.file);
  try {
    m->graph = Graph::from_json(parse_json_section(f, f.find(SectionKind::Graph)));
    m->graph.validate(m->weights.shapes());
  } catch (const Error& e) {
    fail(f.label(), ": ", e.what());
  }
  if (meta.contains("self_draft")) {
    try {
      const nlohmann::json& d = meta["self_draft"];
      StoredSelfDraft sd;
      sd.spec = d.at("spec").get<std::string>();
      sd.graph = Graph::from_json(d.at("graph"));
      sd.graph.validate(m->weights.shapes());
      m->self_draft = std::move(sd);
    } catch (const nlohmann::json::exception& e) {
      fail(f.label(), ": stored self-draft: ", e.what());
    } catch (const Error& e) {
      fail(f.label(), ": stored self-draft: ", e.what());
    }
  }
  const int64_t vocab = m->graph.nodes[size_t(m->graph.output)].cols;
  ELM_CHECK(m->info.vocab_size == vocab, f.label(), ": model info says ", m->info.vocab_size,
            " tokens, the graph's logits have ", vocab);

  if (int c = f.find(SectionKind::ChatTemplate); c >= 0) m->chat_template = std::string(f.text(size_t(c)));
  const int tj = f.find(SectionKind::TokenizerJson), tc = f.find(SectionKind::TokenizerConfig),
            tg = f.find(SectionKind::TokenizerGguf);
  try {
    if (tj >= 0) m->tokenizer = Tokenizer::from_json(f.text(size_t(tj)), tc >= 0 ? f.text(size_t(tc)) : "");
    else if (tg >= 0) m->tokenizer = Tokenizer::from_gguf(parse_json_section(f, tg));
  } catch (const Error& e) {
    fail(f.label(), ": tokenizer: ", e.what());
  }
  if (m->tokenizer) {  // what the checkpoint's configs left out, the tokenizer knows (as load_hf_dir does)
    if (m->chat_template.empty()) m->chat_template = m->tokenizer->chat_template();
    if (m->info.bos_token_id < 0) m->info.bos_token_id = m->tokenizer->bos_id();
    if (m->info.eos_token_ids.empty() && m->tokenizer->eos_id() >= 0) m->info.eos_token_ids.push_back(m->tokenizer->eos_id());
  }

  for (size_t i = 0; i < f.sections.size(); ++i)
    if (f.sections[i].kind == uint32_t(SectionKind::CompiledPlan)) m->compiled.push_back(read_plan(f, int(i), m->graph));
  return m;
}

std::shared_ptr<Model> load_elm(const std::string& path) { return model_from_elm(ElmFile::open(path)); }

}  // namespace elm
