// elm run: generate text from a prompt.
#include <chrono>
#include <cstdio>

#include "cli.h"
#include "core/error.h"
#include "options.h"
#include "process_stats.h"
#include "progress.h"

namespace elm::cli {

namespace {
struct RunArgs {
  ModelOptions model;
  SamplingOptions sampling;
  SpeculativeCliOptions spec;
  std::string prompt;
  std::string prompt_ids;
  int n_predict = 128;
  bool no_bos = false;
  bool ignore_eos = false;
};

int run(const RunArgs& a) {
  const auto t_start = std::chrono::steady_clock::now();
  const std::string path = a.model.model.empty() ? bundled_model_path() : a.model.model;
  ELM_CHECK(!path.empty(), "no model given (-m) and no bundled model found");
  std::shared_ptr<Model> m = Model::load(path);
  if (a.model.verbose) {
    const double load_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_start).count();
    std::fprintf(stderr, "loaded %s in %.1f ms: resident %s (peak %s), weights %s\n", path.c_str(), load_ms,
                 human_bytes(rss_bytes()).c_str(), human_bytes(peak_rss_bytes()).c_str(),
                 human_bytes(m->weights.total_bytes()).c_str());
  }

  std::vector<int32_t> prompt;
  if (!a.prompt_ids.empty()) {
    prompt = parse_ids(a.prompt_ids);
  } else {
    ELM_CHECK(m->tokenizer, path, " has no tokenizer: pass the prompt as ids with --prompt-ids");
    prompt = m->tokenizer->encode(a.prompt, /*add_special=*/!a.no_bos);  // BOS as the tokenizer defines it
  }
  ELM_CHECK(!prompt.empty(), "the prompt is empty");
  const SpeculationConfig spec_config = a.spec.config();
  SessionOptions session_options = a.model.session(*m);
  spec_config.configure(session_options.runtime);
  Session session(m, session_options);
  if (a.model.verbose)
    std::fprintf(stderr, "%s%s", session.executor().used_compiled_plan() ? "using the compiled plan\n" : "",
                 session.executor().plan_summary().c_str());
  std::unique_ptr<Speculator> spec;
  if (spec_config.enabled()) spec = SpeculatorFactory(spec_config, m, session_options).make(0, a.sampling.c.seed);

  GenerateOptions g;
  g.max_tokens = a.n_predict;
  g.sampling = a.sampling.c;
  g.stop_at_eos = !a.ignore_eos;
  if (m->tokenizer && a.prompt_ids.empty()) {
    std::fputs(a.prompt.c_str(), stdout);
    std::fflush(stdout);
  }
  double ttft_ms = 0;
  bool first = true;
  const double gen_start_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_start).count();
  auto on_text = [&](const std::string& piece) {
    if (first) {
      ttft_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_start).count();
      first = false;
    }
    std::fputs(piece.c_str(), stdout);
    std::fflush(stdout);
    return true;
  };
  GenerateResult r = spec ? spec->generate(session, 0, prompt, g, on_text) : generate(session, 0, prompt, g, on_text);
  if (first) ttft_ms = gen_start_ms + r.prompt_ms;  // no text streamed: the first token follows the prefill
  if (!m->tokenizer) {
    for (int32_t t : r.tokens) std::printf("%d ", t);
  }
  std::printf("\n");
  std::fflush(stdout);  // the statistics below go to stderr: keep them after the text
  if (r.reason == StopReason::Context)
    std::fprintf(stderr, "[stopped: the context of %lld tokens is full]\n", (long long)session.n_ctx());
  std::fprintf(stderr, "prompt: %d tokens, %.1f tok/s | generated: %zu tokens, %.1f tok/s | stop: %s\n", r.n_prompt,
               r.prompt_tps(), r.tokens.size(), r.gen_tps(), stop_reason_name(r.reason));
  if (a.model.verbose) {
    std::fprintf(stderr, "time to first token: %.1f ms (from process start)\n", ttft_ms);
    std::fprintf(stderr, "peak resident memory: %s\n", human_bytes(peak_rss_bytes()).c_str());
  }
  if (spec && a.model.verbose) print_speculative_stats(spec->stats());
  return 0;
}
}  // namespace

void register_run(CLI::App& app, Registry& reg) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* sub = app.add_subcommand("run", "generate text from a prompt");
  a->model.add(sub);
  a->sampling.add(sub);
  a->spec.add(sub);
  sub->add_option("-p,--prompt", a->prompt, "prompt text");
  sub->add_option("--prompt-ids", a->prompt_ids, "prompt as comma-separated token ids");
  sub->add_option("-n,--n-predict", a->n_predict, "tokens to generate (-1: until EOS or full context)");
  sub->add_flag("--no-bos", a->no_bos, "do not add the BOS token");
  sub->add_flag("--ignore-eos", a->ignore_eos, "keep generating past end-of-sequence tokens");
  reg.add(sub, [a] { return run(*a); });
}

}  // namespace elm::cli
