#include "options.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/error.h"

namespace elm::cli {

void ModelOptions::add(CLI::App* app) {
  app->add_option("-m,--model", model, "model: Hugging Face directory, .elm or .gguf file");
  app->add_option("-t,--threads", threads, "CPU threads (default: all cores)");
  app->add_option("-c,--ctx", ctx, "context length in tokens (default: the model's, at most 4096)");
  app->add_option("-b,--batch", batch, "most tokens per forward step")->check(CLI::Range(1, 65536));
  app->add_option("--backend", backends, "backends in preference order (cpu, cuda, vulkan); CPU is the fallback")
      ->delimiter(',');
  app->add_option("--kv-type", kv_type, "KV cache element type: f32, f16, int8, auto (f16 unless the model is f32)")
      ->check(CLI::IsMember({"auto", "f32", "f16", "int8"}));
  app->add_option("--act-type", act_type,
                  "precision activations are rounded to between ops: f32, bf16, f16 (arithmetic stays f32)")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  app->add_flag("--no-repack", no_repack,
               "CPU: multiply quantized weights in place from the file instead of a copy packed at load for "
               "the fast kernels (no copy: slower; files from `elm compile --backends cpu` hold the packed copy)");
  app->add_flag("-v,--verbose", verbose, "print timings and the execution plan");
}

SessionOptions ModelOptions::session(const Model& m, int max_seqs) const {
  SessionOptions o;
  o.runtime.threads = threads;
  const int64_t model_ctx = m.info.context_length > 0 ? m.info.context_length : 4096;
  o.runtime.n_ctx = int(ctx > 0 ? ctx : std::min<int64_t>(model_ctx, 4096));
  o.runtime.max_batch = std::min(batch, o.runtime.n_ctx);
  o.runtime.max_seqs = max_seqs;
  o.runtime.kv_dtype = kv_type == "auto" ? m.auto_kv_dtype() : dtype_from_flag(kv_type);
  o.runtime.act_dtype = dtype_from_flag(act_type);
  o.runtime.cpu_repack = !no_repack;
  if (!backends.empty()) {
    o.backends = backends;
  } else {
    // A .elm file compiled for backends this build has runs on them (with its stored plan and
    // artifacts); otherwise on the CPU.
    const std::vector<std::string> have = backend_names();
    for (const CompiledPlan& p : m.compiled) {
      const bool available = std::all_of(p.backends.begin(), p.backends.end(), [&](const std::string& b) {
        return std::find(have.begin(), have.end(), b) != have.end();
      });
      if (available) {
        o.backends = p.backends;
        break;
      }
    }
  }
  return o;
}

void SamplingOptions::add(CLI::App* app) {
  app->add_option("--temp", c.temperature, "sampling temperature (0 = greedy)");
  app->add_option("--top-k", c.top_k, "keep the k most likely tokens (0 = off)");
  app->add_option("--top-p", c.top_p, "nucleus sampling threshold (1 = off)");
  app->add_option("--min-p", c.min_p, "drop tokens below min-p times the top probability (0 = off)");
  app->add_option("--repeat-penalty", c.repeat_penalty, "penalty for recently seen tokens (1 = off)");
  app->add_option("--repeat-last-n", c.repeat_last_n, "tokens the repeat penalty looks back over");
  app->add_option("-s,--seed", c.seed, "random seed");
}

void SpeculativeCliOptions::add(CLI::App* app) {
  auto* d = app->add_option("--draft", draft, "draft model for speculative decoding (same tokenizer as the model)");
  auto* sd = app->add_option("--self-draft", self_draft,
                             "speculate with a sub-model of the model itself, e.g. 'layers=0-3;ffn=0.5' (MatFormer "
                             "style: kept layers, share of FFN neurons); without a value, the one the .elm file stores "
                             "(elm convert --self-draft)")
                 ->expected(0, 1)
                 ->default_str("stored")
                 ->excludes(d);
  app->add_option("--draft-max", draft_max, "most tokens drafted per step (the length adapts below it)")
      ->check(CLI::Range(1, 64));
  app->add_flag("--draft-fixed", draft_fixed, "always draft --draft-max tokens (sampling reproducible from the seed)");
  app->add_option("--draft-vocab", draft_vocab,
                  "the draft scores only the first N token ids (its output layer costs N / vocabulary as much; "
                  "BPE ids run roughly by frequency; 0 = all). Output is unchanged, only acceptance")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--lookup", lookup, "speculate by prompt lookup: match the last N tokens earlier in the text")
      ->check(CLI::Range(1, 64))
      ->excludes(d)
      ->excludes(sd);
}

SpeculationConfig SpeculativeCliOptions::config() const {
  SpeculationConfig c;
  if (!draft.empty()) c.draft = Model::load(draft);
  c.self_draft = self_draft;
  c.lookup = lookup;
  c.draft_vocab = draft_vocab;
  c.options.draft_max = draft_max;
  c.options.adaptive = !draft_fixed;
  return c;
}

void print_speculative_stats(const SpeculativeStats& st) {
  std::fprintf(stderr,
               "speculative (%s): acceptance %.1f%% (%lld of %lld drafted), %.2f tokens per target pass, "
               "est. speedup %.2fx (plain step %.1f ms; draft %.0f ms, verify %.0f ms)\n",
               st.source.c_str(), 100 * st.acceptance_rate(), (long long)st.accepted, (long long)st.drafted,
               st.tokens_per_pass(), st.est_speedup(), st.plain_step_ms, st.draft_ms, st.verify_ms);
}

std::string bundled_model_path() {
  // Next to the binary's source tree: <repo>/models/stories260k. Found relative to the working
  // directory or the executable.
  namespace fs = std::filesystem;
  std::vector<fs::path> roots = {fs::current_path()};
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) roots.push_back(exe.parent_path().parent_path().parent_path());
  for (const auto& r : roots) {
    fs::path p = r / "models" / "stories260k";
    if (fs::exists(p / "config.json")) return p.string();
  }
  return "";
}

std::vector<int32_t> parse_ids(const std::string& csv) {
  std::vector<int32_t> ids;
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    try {
      size_t used = 0;
      long v = std::stol(item, &used);
      ELM_CHECK(used == item.size() && v >= 0 && v <= INT32_MAX, "bad token id '", item, "'");
      ids.push_back(int32_t(v));
    } catch (const std::logic_error&) {
      fail("bad token id '", item, "'");
    }
  }
  return ids;
}

}  // namespace elm::cli
