// elm convert: a Hugging Face directory or a GGUF file -> one .elm file.
#include <cstdio>

#include "cli.h"
#include "core/error.h"
#include "format/convert.h"
#include "progress.h"

namespace elm::cli {

namespace {
struct ConvertArgs {
  std::string input, output, quant;
};

int run(const ConvertArgs& a) {
  Progress progress("converting");
  ConvertOptions o;
  o.quant = a.quant;
  o.progress = [&](uint64_t done, uint64_t total, const std::string& t) { progress.update(done, total, t); };
  const ConvertResult r = convert_to_elm(a.input, a.output, o);
  progress.finish();
  std::fprintf(stderr, "wrote %s: %s (%zu tensors, weights %s from %s in the %s source, quant %s) in %.1f s\n",
               a.output.c_str(), human_bytes(r.file_bytes).c_str(), r.tensors, human_bytes(r.weight_bytes).c_str(),
               human_bytes(r.source_bytes).c_str(), r.source_format.c_str(), r.quant.c_str(), progress.seconds());
  return 0;
}
}  // namespace

void register_convert(CLI::App& app, Registry& reg) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* sub = app.add_subcommand("convert", "convert a Hugging Face directory or a .gguf file to one .elm file");
  sub->add_option("input", a->input, "Hugging Face model directory or .gguf file")->required();
  sub->add_option("-o,--output", a->output, "the .elm file to write")->required();
  sub->add_option("-q,--quant", a->quant,
                  "weights: f32, bf16, f16, int8, int4, int4-g32/64/128, int4m-g32/64/128, or keep (the source's "
                  "formats). Default: int4 for Hugging Face checkpoints, keep for GGUF files");
  reg.add(sub, [a] { return run(*a); });
}

}  // namespace elm::cli
