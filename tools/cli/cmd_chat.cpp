// elm chat: an interactive conversation with streaming replies. Each turn renders the whole
// conversation with the model's chat template and feeds only the tokens past the part the KV cache
// already holds, so a turn costs its new tokens, not the history. --draft / --self-draft / --lookup
// speculate as in elm run.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "chat/chat.h"
#include "cli.h"
#include "core/error.h"
#include "options.h"

namespace elm::cli {

namespace {
struct ChatArgs {
  ModelOptions model;
  SamplingOptions sampling;
  SpeculativeCliOptions spec;
  std::string system;
  std::string kwargs;  // extra template variables as a JSON object
  int n_predict = -1;
};

int run(const ChatArgs& a) {
  const std::string path = a.model.model.empty() ? bundled_model_path() : a.model.model;
  ELM_CHECK(!path.empty(), "no model given (-m) and no bundled model found");
  std::shared_ptr<Model> m = Model::load(path);
  ELM_CHECK(m->tokenizer, path, " has no tokenizer: elm chat needs one");
  ChatRequest req;
  if (!a.kwargs.empty()) {
    req.extra = nlohmann::ordered_json::parse(a.kwargs, nullptr, false);
    ELM_CHECK(!req.extra.is_discarded() && req.extra.is_object(), "--chat-kwargs must be a JSON object");
  }
  if (!a.system.empty()) req.messages.push_back({{"role", "system"}, {"content", a.system}});
  if (m->chat_template.empty())
    std::fprintf(stderr, "[%s has no chat template: using ChatML]\n", m->info.name.c_str());

  const SpeculationConfig spec_config = a.spec.config();
  SessionOptions session_options = a.model.session(*m);
  spec_config.configure(session_options.runtime);
  Session session(m, session_options);
  // One speculator for the conversation's sequence: each turn it follows the rollback to the cached
  // prefix (Speculator::generate), and a draft model keeps its own cache of the conversation too.
  std::unique_ptr<Speculator> spec;
  if (spec_config.enabled()) spec = SpeculatorFactory(spec_config, m, session_options).make(0, a.sampling.c.seed);
  GenerateOptions g;
  g.max_tokens = a.n_predict;
  g.sampling = a.sampling.c;
  if (m->chat_template.empty()) g.stop = {"<|im_end|>"};
  std::vector<int32_t> cached;  // the ids whose keys and values the session holds, in order

  std::fprintf(stderr, "[chatting with %s; /exit or end of input quits]\n", m->info.name.c_str());
  std::string line;
  for (;;) {
    std::fprintf(stderr, "> ");
    std::fflush(stderr);
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (line.empty()) continue;
    req.messages.push_back({{"role", "user"}, {"content", line}});
    const std::vector<int32_t> ids = tokenize_chat(*m, req);
    // Reuse the cached prefix; feed at least one token so there are logits to sample from.
    size_t keep = 0;
    while (keep < cached.size() && keep < ids.size() && cached[keep] == ids[keep]) ++keep;
    keep = std::min(keep, ids.size() - 1);
    ELM_CHECK(int64_t(ids.size()) < session.n_ctx(), "the conversation (", ids.size(),
              " tokens) no longer fits the context of ", session.n_ctx(), " tokens");
    session.truncate(0, int32_t(keep));
    const std::vector<int32_t> fresh(ids.begin() + std::ptrdiff_t(keep), ids.end());
    auto on_text = [](const std::string& piece) {
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
      return true;
    };
    GenerateResult r = spec ? spec->generate(session, 0, fresh, g, on_text) : generate(session, 0, fresh, g, on_text);
    std::printf("\n");
    std::fflush(stdout);  // the statistics below go to stderr: keep them after the reply
    cached = ids;
    cached.insert(cached.end(), r.tokens.begin(), r.tokens.end());
    cached.resize(size_t(session.n_past(0)));  // the last sampled token may not have been fed
    req.messages.push_back({{"role", "assistant"}, {"content", r.text}});
    if (a.model.verbose)
      std::fprintf(stderr, "[prompt: %d new tokens (%zu reused), %.1f tok/s | reply: %zu tokens, %.1f tok/s | %s]\n",
                   r.n_prompt, keep, r.prompt_tps(), r.tokens.size(), r.gen_tps(), stop_reason_name(r.reason));
    if (spec && a.model.verbose) print_speculative_stats(spec->stats());
    if (r.reason == StopReason::Context) {
      std::fprintf(stderr, "[the context is full]\n");
      break;
    }
  }
  return 0;
}
}  // namespace

void register_chat(CLI::App& app, Registry& reg) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* sub = app.add_subcommand("chat", "chat with a model interactively");
  a->model.add(sub);
  a->sampling.add(sub);
  a->spec.add(sub);
  sub->add_option("--system", a->system, "system prompt");
  sub->add_option("--chat-kwargs", a->kwargs, "extra chat template variables as JSON, e.g. '{\"enable_thinking\": false}'");
  sub->add_option("-n,--n-predict", a->n_predict, "most tokens per reply (-1: until end of turn)");
  reg.add(sub, [a] { return run(*a); });
}

}  // namespace elm::cli
