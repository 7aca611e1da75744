// Subcommand registry: every cmd_*.cpp defines a register_<name>(CLI::App&, Registry&) that adds its
// subcommand and the action to run when it is selected.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <utility>
#include <vector>

namespace elm::cli {

class Registry {
 public:
  void add(CLI::App* sub, std::function<int()> action) { cmds_.emplace_back(sub, std::move(action)); }
  int run_selected() const {
    for (const auto& [sub, action] : cmds_)
      if (sub->parsed()) return action();
    return 2;
  }

 private:
  std::vector<std::pair<CLI::App*, std::function<int()>>> cmds_;
};

void register_all(CLI::App& app, Registry& r);

}  // namespace elm::cli
