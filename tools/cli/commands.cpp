// The list of subcommands. Each lives in its own cmd_<name>.cpp.
#include "cli.h"

namespace elm::cli {

void register_run(CLI::App& app, Registry& r);
void register_logits(CLI::App& app, Registry& r);
void register_convert(CLI::App& app, Registry& r);
void register_compile(CLI::App& app, Registry& r);
void register_inspect(CLI::App& app, Registry& r);

void register_all(CLI::App& app, Registry& r) {
  register_run(app, r);
  register_logits(app, r);
  register_convert(app, r);
  register_compile(app, r);
  register_inspect(app, r);
}

}  // namespace elm::cli
