// elm compile: store a partition plan and the backends' compiled artifacts in a .elm file.
#include <cstdio>

#include "cli.h"
#include "core/error.h"
#include "format/elm_compile.h"
#include "progress.h"

namespace elm::cli {

namespace {
struct CompileArgs {
  std::string input, output;
  std::vector<std::string> backends;
};

int run(const CompileArgs& a) {
  Progress timer("compiling");
  const std::string out = a.output.empty() ? a.input : a.output;
  const CompileResult r = compile_elm(a.input, out, a.backends);
  std::string list;
  for (const auto& b : r.backends) list += (list.empty() ? "" : ",") + b;
  size_t total = 0;
  for (size_t n : r.artifact_bytes) total += n;
  std::fprintf(stderr, "%s", r.summary.c_str());
  std::fprintf(stderr, "wrote %s: plan for %s, %zu segments, %s of artifacts, in %.1f s\n", out.c_str(), list.c_str(),
               r.segments, human_bytes(total).c_str(), timer.seconds());
  return 0;
}
}  // namespace

void register_compile(CLI::App& app, Registry& reg) {
  auto a = std::make_shared<CompileArgs>();
  CLI::App* sub = app.add_subcommand("compile", "partition a .elm model for backends and store their compiled forms");
  sub->add_option("model", a->input, ".elm file")->required();
  sub->add_option("--backends", a->backends, "backends in preference order (cpu is the fallback)")
      ->delimiter(',')
      ->required();
  sub->add_option("-o,--output", a->output, "write here instead of replacing the input");
  reg.add(sub, [a] { return run(*a); });
}

}  // namespace elm::cli
