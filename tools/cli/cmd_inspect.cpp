// elm inspect: what a .elm file holds (header, sections, model, graph, tensors, quantization, tokenizer,
// compiled plans) and whether every checksum matches. Exits 1 when the file is damaged.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "core/error.h"
#include "format/elm_file.h"
#include "progress.h"
#include "runtime/model.h"

namespace elm::cli {

namespace {
struct InspectArgs {
  std::string path;
  bool tensors = false;
};

std::string format_of(const TensorView& v) {
  std::string s(dtype_name(v.dtype));
  if (is_quantized(v.dtype)) s += cat(" g", v.group, " ", dtype_name(v.scale_dtype), " scales");
  return s;
}

int run(const InspectArgs& a) {
  const ElmFile f = ElmFile::open(a.path, Verify::None);  // checksums are reported below, not enforced
  std::printf("%s: .elm format %u.%u, %s\n", a.path.c_str(), f.version_major, f.version_minor,
              human_bytes(f.size()).c_str());

  std::printf("\nsections (%zu):\n  %3s  %-22s %14s %14s %6s  %s\n", f.sections.size(), "#", "kind", "offset", "size",
              "align", "checksum");
  size_t bad_sections = 0;
  for (size_t i = 0; i < f.sections.size(); ++i) {
    const SectionEntry& e = f.sections[i];
    const bool ok = f.section_ok(i);
    bad_sections += !ok;
    std::printf("  %3zu  %-22s %14llu %14llu %6u  %s\n", i, section_kind_name(e.kind), (unsigned long long)e.offset,
                (unsigned long long)e.size, e.align, ok ? "ok" : "MISMATCH");
  }

  size_t bad_tensors = 0;
  std::map<std::string, std::pair<size_t, uint64_t>> formats;  // format -> count, bytes
  uint64_t tensor_bytes = 0;
  for (size_t i = 0; i < f.tensors.size(); ++i) {
    const TensorView& v = f.tensors[i].view;
    auto& [n, b] = formats[format_of(v)];
    ++n, b += v.nbytes;
    tensor_bytes += v.nbytes;
    bad_tensors += !f.tensor_ok(i);
  }
  std::printf("\ntensors: %zu, %s\n", f.tensors.size(), human_bytes(tensor_bytes).c_str());
  for (const auto& [fmt, nb] : formats)
    std::printf("  %-24s %5zu tensors  %s\n", fmt.c_str(), nb.first, human_bytes(nb.second).c_str());
  if (a.tensors) {
    for (size_t i = 0; i < f.tensors.size(); ++i) {
      const TensorEntry& t = f.tensors[i];
      std::printf("  %-52s %-22s %-14s %10s  %s\n", t.name.c_str(), format_of(t.view).c_str(),
                  shape_str(t.view.shape).c_str(), human_bytes(t.view.nbytes).c_str(), f.tensor_ok(i) ? "ok" : "MISMATCH");
    }
  }

  bool loads = true;
  try {
    const std::shared_ptr<Model> m = model_from_elm(f);
    const ModelInfo& info = m->info;
    std::string eos;
    for (int32_t e : info.eos_token_ids) eos += (eos.empty() ? "" : ",") + std::to_string(e);
    std::printf("\nmodel: %s \"%s\", vocab %lld, context %lld, bos %d, eos [%s]\n  source: %s\n", info.family.c_str(),
                info.name.c_str(), (long long)info.vocab_size, (long long)info.context_length, info.bos_token_id,
                eos.c_str(), info.source.c_str());
    const nlohmann::json meta = nlohmann::json::parse(f.text(size_t(f.find(SectionKind::Meta))), nullptr, false);
    if (meta.is_object() && meta.contains("convert") && meta["convert"].is_object())
      std::printf("  converted from %s with quantization %s\n", meta["convert"].value("source_format", "?").c_str(),
                  meta["convert"].value("quant", "?").c_str());
    if (meta.is_object() && meta.contains("convert") && meta["convert"].is_object() &&
        meta["convert"].contains("calibration") && meta["convert"]["calibration"].is_object()) {
      const nlohmann::json& c = meta["convert"]["calibration"];
      std::printf("  calibrated (%s) on %lld tokens of %s\n", c.value("method", "?").c_str(),
                  (long long)c.value("tokens", int64_t(0)), c.value("file", "?").c_str());
    }
    if (m->self_draft)
      std::printf("  self-draft stored: %s, %zu nodes (elm run --self-draft)\n", m->self_draft->spec.c_str(),
                  m->self_draft->graph.nodes.size());

    std::map<std::string, size_t> ops;
    for (const Node& n : m->graph.nodes) ++ops[op_name(n.op)];
    std::printf("\ngraph: %zu nodes, %zu states, logits [Out, %lld]\n ", m->graph.nodes.size(), m->graph.states.size(),
                (long long)m->graph.nodes[size_t(m->graph.output)].cols);
    for (const auto& [op, n] : ops) std::printf(" %s %zu", op.c_str(), n);
    std::printf("\n");

    const int tj = f.find(SectionKind::TokenizerJson), tc = f.find(SectionKind::TokenizerConfig),
              tg = f.find(SectionKind::TokenizerGguf), ct = f.find(SectionKind::ChatTemplate);
    std::printf("\ntokenizer: ");
    if (tj >= 0) std::printf("tokenizer.json (%s)", human_bytes(f.sections[size_t(tj)].size).c_str());
    if (tc >= 0) std::printf(" + tokenizer_config.json (%s)", human_bytes(f.sections[size_t(tc)].size).c_str());
    if (tg >= 0) std::printf("GGUF vocabulary (%s)", human_bytes(f.sections[size_t(tg)].size).c_str());
    if (tj < 0 && tg < 0) std::printf("none");
    std::printf("%s; chat template: %s\n", m->tokenizer ? "" : " (not loadable by this build)",
                ct >= 0 ? human_bytes(f.sections[size_t(ct)].size).c_str() : "none");

    std::printf("\ncompiled plans: %s\n", m->compiled.empty() ? "none" : "");
    for (const CompiledPlan& p : m->compiled) {
      std::string list;
      for (const auto& b : p.backends) list += (list.empty() ? "" : ",") + b;
      size_t n = 0, bytes = 0;
      for (const auto& art : p.artifacts) n += !art.empty(), bytes += art.size();
      std::printf("  [%s]: %zu segments, %zu artifacts (%s)\n", list.c_str(), p.artifacts.size(), n,
                  human_bytes(bytes).c_str());
    }
  } catch (const Error& e) {
    loads = false;
    std::printf("\nmodel: cannot be loaded: %s\n", e.what());
  }

  std::printf("\nchecksums: %zu/%zu sections ok, %zu/%zu tensors ok\n", f.sections.size() - bad_sections,
              f.sections.size(), f.tensors.size() - bad_tensors, f.tensors.size());
  if (bad_sections || bad_tensors || !loads) {
    std::fprintf(stderr, "error: %s is damaged\n", a.path.c_str());
    return 1;
  }
  return 0;
}
}  // namespace

void register_inspect(CLI::App& app, Registry& reg) {
  auto a = std::make_shared<InspectArgs>();
  CLI::App* sub = app.add_subcommand("inspect", "show what a .elm file holds and verify its checksums");
  sub->add_option("model", a->path, ".elm file")->required();
  sub->add_flag("--tensors", a->tensors, "list every tensor");
  reg.add(sub, [a] { return run(*a); });
}

}  // namespace elm::cli
