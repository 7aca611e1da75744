// elm: convert, compile, run, chat, serve, bench and evaluate language models on this device.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"elm: an on-device language model engine"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("elm ") + ELM_VERSION);
  elm::cli::Registry commands;
  elm::cli::register_all(app, commands);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return commands.run_selected();
  } catch (const elm::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
