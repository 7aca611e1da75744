// elm convert: a Hugging Face directory or a GGUF file -> one .elm file.
#include <cstdio>

#include "cli.h"
#include "core/error.h"
#include "format/convert.h"
#include "progress.h"

namespace elm::cli {

namespace {
struct ConvertArgs {
  std::string input, output, quant, calib, self_draft;
  int64_t calib_tokens = 16384;
  std::string calib_mode = "gptq";
  int threads = 0;
};

int run(const ConvertArgs& a) {
  Progress progress("converting");
  ConvertOptions o;
  o.quant = a.quant;
  o.calib_file = a.calib;
  o.self_draft = a.self_draft;
  o.calib_tokens = a.calib_tokens;
  o.calib_gptq = a.calib_mode == "gptq";
  o.threads = a.threads;
  Progress calib_progress("calibrating", "tokens");
  o.calib_progress = [&](int64_t done, int64_t total) { calib_progress.update(uint64_t(done), uint64_t(total), ""); };
  o.progress = [&](uint64_t done, uint64_t total, const std::string& t) { progress.update(done, total, t); };
  const ConvertResult r = convert_to_elm(a.input, a.output, o);
  if (r.calib_tokens) calib_progress.finish();
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
  sub->add_option("--calib", a->calib,
                  "a text file the float model reads first: 4-bit weights are then rounded for the least error in "
                  "the activations it produces (lowers KL divergence); 'self': text the model samples itself");
  sub->add_option("--calib-tokens", a->calib_tokens, "at most this many tokens of the calibration text")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 30));
  sub->add_option("--calib-mode", a->calib_mode,
                  "gptq (default): round each 4-bit column with the errors of those before it compensated; "
                  "scales: only weight each group's scale search by the activations")
      ->check(CLI::IsMember({"gptq", "scales"}));
  sub->add_option("--self-draft", a->self_draft,
                  "also store a sub-model of this model for speculative decoding, e.g. 'layers=0-3;ffn=0.5' (kept "
                  "layers, share of FFN neurons); `elm run --self-draft` then uses it");
  sub->add_option("-t,--threads", a->threads, "threads for the calibration pass (default: one per core)");
  reg.add(sub, [a] { return run(*a); });
}

}  // namespace elm::cli
