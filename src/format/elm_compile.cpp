#include "format/elm_compile.h"

#include <nlohmann/json.hpp>

#include "backend/partition.h"
#include "core/error.h"
#include "format/elm_file.h"
#include "runtime/model.h"

namespace elm {

namespace {

void write_plan(ElmWriter& w, const CompiledPlan& p) {
  std::vector<int64_t> artifact_sections;
  for (const auto& a : p.artifacts)
    artifact_sections.push_back(a.empty() ? -1 : int64_t(w.add_section(SectionKind::Artifact, a, uint32_t(kElmPageAlign))));
  const nlohmann::json j = {{"backends", p.backends}, {"node_backend", p.node_backend}, {"artifacts", artifact_sections}};
  w.add_text(SectionKind::CompiledPlan, j.dump());
}

}  // namespace

CompileResult compile_elm(const std::string& input, const std::string& output,
                          std::vector<std::unique_ptr<Backend>> backends, const RuntimeConfig& config) {
  ELM_CHECK(!backends.empty(), "compile: no backends");
  const ElmFile f = ElmFile::open(input);
  const std::shared_ptr<Model> m = model_from_elm(f);

  CompileResult r;
  std::vector<Backend*> raw;
  for (auto& b : backends) {
    r.backends.push_back(b->name());
    raw.push_back(b.get());
  }
  const PartitionPlan plan = partition(m->graph, m->weights, raw);
  r.summary = plan.summary(m->graph, r.backends);
  r.segments = plan.segments.size();

  CompiledPlan compiled;
  compiled.backends = r.backends;
  compiled.node_backend = plan.node_backend;
  std::vector<std::vector<uint8_t>> artifacts;
  for (const auto& seg : plan.segments) {
    SegmentSpec spec;
    spec.graph = &m->graph;
    spec.weights = &m->weights;
    spec.nodes = seg.nodes;
    spec.inputs = seg.inputs;
    spec.outputs = seg.outputs;
    spec.config = config;
    artifacts.push_back(backends[size_t(seg.backend)]->compile(spec));
    r.artifact_bytes.push_back(artifacts.back().size());
  }
  for (const auto& a : artifacts) compiled.artifacts.emplace_back(a);

  // Everything but compiled sections is copied as it is; earlier plans for other backend lists stay.
  ElmWriter w(output);
  for (size_t i = 0; i < f.sections.size(); ++i) {
    const uint32_t k = f.sections[i].kind;
    if (k != uint32_t(SectionKind::CompiledPlan) && k != uint32_t(SectionKind::Artifact))
      w.copy_section(f.sections[i], f.bytes(i));
  }
  for (const CompiledPlan& p : m->compiled)
    if (p.backends != compiled.backends) write_plan(w, p);
  write_plan(w, compiled);
  w.finish();
  return r;
}

CompileResult compile_elm(const std::string& input, const std::string& output, std::vector<std::string> names,
                          const RuntimeConfig& config) {
  if (names.empty() || names.back() != "cpu") names.push_back("cpu");
  std::vector<std::unique_ptr<Backend>> backends;
  for (const auto& n : names) backends.push_back(make_backend(n, config));
  return compile_elm(input, output, std::move(backends), config);
}

}  // namespace elm
