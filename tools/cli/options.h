// Options several subcommands share: the model, threads, context, backends, sampling.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "runtime/generate.h"
#include "runtime/session.h"

namespace elm::cli {

struct ModelOptions {
  std::string model;
  int threads = 0;
  int ctx = 0;  // 0: min(model's context, 4096)
  int batch = 512;
  std::vector<std::string> backends;  // empty: cpu
  std::string kv_type = "f32";
  std::string act_type = "f32";
  bool verbose = false;

  void add(CLI::App* app);
  SessionOptions session(const Model& m, int max_seqs = 1) const;
};

struct SamplingOptions {
  SamplerConfig c;
  void add(CLI::App* app);
};

// The path of the default model bundled with the repository (models/stories260k), or "".
std::string bundled_model_path();
std::vector<int32_t> parse_ids(const std::string& csv);

}  // namespace elm::cli
