// The list of subcommands. Each lives in its own cmd_<name>.cpp.
#include "cli.h"

namespace elm::cli {

void register_run(CLI::App& app, Registry& r);
void register_logits(CLI::App& app, Registry& r);
void register_convert(CLI::App& app, Registry& r);
void register_compile(CLI::App& app, Registry& r);
void register_inspect(CLI::App& app, Registry& r);
void register_tokenize(CLI::App& app, Registry& r);
void register_chat(CLI::App& app, Registry& r);
void register_bench(CLI::App& app, Registry& r);
void register_perplexity(CLI::App& app, Registry& r);
#ifdef ELM_WITH_SERVER
void register_serve(CLI::App& app, Registry& r);
#endif

void register_all(CLI::App& app, Registry& r) {
  register_run(app, r);
  register_logits(app, r);
  register_convert(app, r);
  register_compile(app, r);
  register_inspect(app, r);
  register_tokenize(app, r);
  register_chat(app, r);
  register_bench(app, r);
  register_perplexity(app, r);
#ifdef ELM_WITH_SERVER
  register_serve(app, r);
#endif
}

}  // namespace elm::cli
