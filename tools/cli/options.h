// Options several subcommands share: the model, threads, context, backends, sampling.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "runtime/generate.h"
#include "runtime/session.h"
#include "runtime/speculator_factory.h"

namespace elm::cli {

struct ModelOptions {
  std::string model;
  int threads = 0;
  int ctx = 0;  // 0: min(model's context, 4096)
  int batch = 512;
  std::vector<std::string> backends;  // empty: cpu
  std::string kv_type = "auto";  // auto: f16 unless every matmul weight is f32
  std::string act_type = "f32";
  bool no_repack = false;  // RuntimeConfig::cpu_repack off
  bool verbose = false;

  void add(CLI::App* app);
  SessionOptions session(const Model& m, int max_seqs = 1) const;
};

struct SamplingOptions {
  SamplerConfig c;
  void add(CLI::App* app);
};

// Speculative decoding: a draft model (--draft), a self-draft carved out of the model (--self-draft) or
// prompt lookup (--lookup); --draft-max, --draft-fixed.
struct SpeculativeCliOptions {
  std::string draft;
  std::string self_draft;
  int draft_max = 8;
  int64_t draft_vocab = 0;  // the draft's output layer scores token ids [0, draft_vocab); 0 = all
  bool draft_fixed = false;
  int lookup = 0;

  void add(CLI::App* app);
  bool enabled() const { return !draft.empty() || !self_draft.empty() || lookup > 0; }
  // The options as a SpeculationConfig (runtime/speculator_factory.h), the --draft model loaded. Throws
  // elm::Error when it cannot be.
  SpeculationConfig config() const;
};
// What `--verbose` prints after a speculative generation (elm run, elm chat).
void print_speculative_stats(const SpeculativeStats& st);

// The path of the default model bundled with the repository (models/stories260k), or "".
std::string bundled_model_path();
std::vector<int32_t> parse_ids(const std::string& csv);

}  // namespace elm::cli
