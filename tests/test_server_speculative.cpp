// The scheduler with speculative decoding: ref-draft-14m drafting for ref-28m, and prompt lookup.
// Greedy requests decoded together in one batch, joining at different times and reading prompts in
// chunks beside the rounds of the others, must give transformers' greedy continuations token for
// token; requests cut short inside a round (max_tokens, a stop string, EOS) must end exactly where the
// scheduler without speculation ends them. Also: the counts in the timings, seeded sampling, and a
// draft that cannot draft for a model (that model decodes plainly, the others speculate).
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <filesystem>

#include "runtime/text_stream.h"
#include "server/http_server.h"
#include "server/openai_json.h"
#include "server/scheduler.h"
#include "server_fixtures.h"
#include "util.h"

using namespace elm;
using namespace elm::server;
using namespace elm::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<Model> ref28m() { return Model::load(shared("models/ref-28m")); }

SpeculationConfig with_draft(int k) {
  SpeculationConfig c;
  c.draft = Model::load(shared("models/ref-draft-14m"));
  c.options = {k, /*adaptive=*/false};  // every round drafts: the counts do not depend on timings
  return c;
}

SpeculationConfig with_lookup(int n, int k) {
  SpeculationConfig c;
  c.lookup = n;
  c.options = {k, false};
  return c;
}

SchedulerOptions options(int slots, int max_batch, SpeculationConfig spec) {
  SchedulerOptions o = scheduler_options(slots, max_batch);
  o.runtime.n_ctx = 96;
  o.speculation = std::move(spec);
  return o;
}

// Everything a job reports that plain and speculative decoding must agree on, streamed text included.
struct Outcome {
  std::vector<int32_t> tokens;
  std::string text, streamed;
  FinishReason reason;
  int completion_tokens;
  bool operator==(const Outcome&) const = default;
};
Outcome outcome(Job& job) {
  Outcome o;
  for (;;) {
    Job::Update u = job.next(std::chrono::seconds(30));
    o.streamed += u.text;
    if (u.finished) break;
  }
  o.tokens = job.tokens();
  o.text = job.text();
  o.reason = job.reason();
  o.completion_tokens = job.stats().completion_tokens;
  return o;
}
std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  os << "reason " << finish_reason_name(o.reason) << ", " << o.completion_tokens << " tokens, text '" << o.text
     << "', tokens";
  for (int32_t t : o.tokens) os << ' ' << t;
  return os;
}

}  // namespace

TEST(ServerSpeculative, ConcurrentGreedyRequestsMatchTransformers) {
  ELM_REQUIRE_SHARED("models/ref-28m/reference.json");
  ELM_REQUIRE_SHARED("models/ref-draft-14m");
  const auto refs = ref28m_greedy();
  auto model = ref28m();
  // Six requests on three slots (three wait in the queue): prompt i followed by the first k reference
  // ids continues with ids[k:]. A 27-token prompt is read in two chunks of a 16-token batch while the
  // other slots verify their drafts in the same steps.
  const std::pair<size_t, size_t> requests[] = {{0, 0}, {1, 20}, {2, 9}, {1, 0}, {0, 9}, {2, 20}};
  for (int source = 0; source < 2; ++source) {
    SCOPED_TRACE(source == 0 ? "draft model" : "prompt lookup");
    Scheduler sched(model, options(3, 16, source == 0 ? with_draft(3) : with_lookup(3, 4)));
    EXPECT_TRUE(sched.speculation_error().empty()) << sched.speculation_error();
    EXPECT_EQ(sched.speculation(), source == 0 ? "draft model ref-draft-14m" : "lookup(3)");
    std::vector<std::shared_ptr<Job>> jobs;
    for (auto [i, k] : requests) {
      std::vector<int32_t> prompt = refs[i].prompt;
      prompt.insert(prompt.end(), refs[i].ids.begin(), refs[i].ids.begin() + long(k));
      jobs.push_back(sched.submit(prompt, greedy_params(int(refs[i].ids.size() - k))));
    }
    int64_t drafted = 0, accepted = 0;
    for (size_t r = 0; r < jobs.size(); ++r) {
      const auto [i, k] = requests[r];
      jobs[r]->wait_finished();
      EXPECT_EQ(jobs[r]->tokens(), std::vector<int32_t>(refs[i].ids.begin() + long(k), refs[i].ids.end()))
          << "request " << r;
      EXPECT_EQ(jobs[r]->reason(), FinishReason::Length);
      const JobStats st = jobs[r]->stats();
      EXPECT_EQ(st.completion_tokens, int(refs[i].ids.size() - k));
      ASSERT_TRUE(st.speculative.has_value());
      // The first token comes from the prompt's logits, every other one from a round.
      EXPECT_EQ(st.speculative->generated + 1, st.completion_tokens) << "request " << r;
      drafted += st.speculative->drafted;
      accepted += st.speculative->accepted;
    }
    EXPECT_GT(drafted, 0);
    EXPECT_GT(accepted, 0);  // the draft agrees often; continuations 0 and 2 repeat themselves (lookup)
  }
}

TEST(ServerSpeculative, RequestsCutInsideARoundEndLikePlainDecoding) {
  ELM_REQUIRE_SHARED("models/ref-28m/reference.json");
  ELM_REQUIRE_SHARED("models/ref-draft-14m");
  const GreedyRef ref = ref28m_greedy()[0];
  auto model = ref28m();
  // EOS: the reference's 8th token (its first occurrence) ends generation.
  const int32_t eos = ref.ids[7];
  ASSERT_EQ(std::find(ref.ids.begin(), ref.ids.end(), eos) - ref.ids.begin(), 7);
  model->info.eos_token_ids = {eos};
  // A stop string in the middle of a token's text: the text up to the 13th token, then 3 characters.
  TextStream ts(model->tokenizer.get(), {});
  for (size_t t = 0; t < 16; ++t) ts.push(ref.ids[t]);
  ts.finish();
  std::vector<int32_t> head(ref.ids.begin(), ref.ids.begin() + 12);
  const size_t at = model->tokenizer->decode(head, true).size();
  const std::string stop = ts.text().substr(at + 1, 3);

  // First a sampled request beside the greedy ones: while it runs, their rows are verified from logits
  // on the host, not as argmaxes taken in the step (Executor::step_argmax). Its output is not compared.
  std::vector<GenerationParams> params = {greedy_params(30)};
  params[0].sampling.temperature = 0.7f;
  for (int n : {1, 2, 3, 6, 11}) params.push_back(greedy_params(n));  // drafts of 4: limits inside rounds
  GenerationParams p = greedy_params(30);
  p.stop = {stop};
  params.push_back(p);
  p = greedy_params(30);
  p.stop_at_eos = true;
  params.push_back(p);

  auto run = [&](SpeculationConfig spec) {
    Scheduler sched(model, options(4, 32, std::move(spec)));
    std::vector<std::shared_ptr<Job>> jobs;
    for (const GenerationParams& q : params) jobs.push_back(sched.submit(ref.prompt, q));
    std::vector<Outcome> out;
    for (auto& j : jobs) out.push_back(outcome(*j));
    return out;
  };
  const std::vector<Outcome> plain = run({});
  EXPECT_EQ(plain[6].reason, FinishReason::Stop);
  EXPECT_EQ(plain[7].reason, FinishReason::Stop);
  EXPECT_EQ(plain[7].tokens, std::vector<int32_t>(ref.ids.begin(), ref.ids.begin() + 7));
  for (int source = 0; source < 2; ++source) {
    const std::vector<Outcome> spec = run(source == 0 ? with_draft(4) : with_lookup(2, 4));
    for (size_t r = 1; r < params.size(); ++r) {
      EXPECT_EQ(spec[r], plain[r]) << (source == 0 ? "draft" : "lookup") << ", request " << r << "\nplain: " << plain[r];
      EXPECT_EQ(spec[r].streamed, spec[r].text);
    }
  }
}

TEST(ServerSpeculative, RollsBackRecurrentAndSlidingWindowCaches) {
  // Rejected drafts must leave no trace: Qwen3.5's recurrent layers roll back through their snapshots
  // (the scheduler sets them up for the draft length), Gemma 3's sliding-window ring caches through
  // seq_truncate. A random tiny Llama drafts (mostly rejected), prompt lookup drafts from a repetitive
  // prompt; one request runs until the context is full, rounds shortened to fit it.
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  const std::vector<std::vector<int32_t>> prompts = {{5, 9, 300, 17, 5, 9, 300, 17, 5, 9}, {1, 7, 7, 7}};
  for (const char* fixture : {"qwen3_5", "gemma3"}) {
    const std::string rel = std::string("fixtures/tiny/") + fixture;
    ELM_REQUIRE_SHARED(rel);
    auto model = Model::load(shared(rel));
    auto run = [&](SpeculationConfig spec) {
      SchedulerOptions o = options(2, 8, std::move(spec));
      o.runtime.n_ctx = 48;
      Scheduler sched(model, o);
      EXPECT_EQ(sched.speculation_error(), "");
      auto a = sched.submit(prompts[0], greedy_params(-1));
      auto b = sched.submit(prompts[1], greedy_params(30));
      std::vector<Outcome> out = {outcome(*a), outcome(*b)};
      if (o.speculation.enabled()) {
        const SpeculativeStats sa = *a->stats().speculative, sb = *b->stats().speculative;
        EXPECT_GT(sa.drafted + sb.drafted, sa.accepted + sb.accepted) << "no draft was rejected: nothing rolled back";
      }
      return out;
    };
    const std::vector<Outcome> plain = run({});
    EXPECT_EQ(plain[0].tokens.size(), 48u - prompts[0].size() + 1) << fixture;  // the context's end
    SpeculationConfig draft;
    draft.draft = Model::load(shared("fixtures/tiny/llama"));
    draft.options = {4, false};
    for (const SpeculationConfig& spec : {draft, with_lookup(2, 4)}) {
      const std::vector<Outcome> got = run(spec);
      for (size_t r = 0; r < plain.size(); ++r)
        EXPECT_EQ(got[r], plain[r]) << fixture << (spec.draft ? " draft" : " lookup") << ", request " << r;
    }
  }
}

TEST(ServerSpeculative, SeededSamplingIsReproducible) {
  ELM_REQUIRE_SHARED("models/ref-28m/reference.json");
  ELM_REQUIRE_SHARED("models/ref-draft-14m");
  const GreedyRef ref = ref28m_greedy()[1];
  // Fixed draft lengths, a seed per request: the draft's draws and the acceptance draws follow the
  // request's seed, whatever else shares the batch.
  Scheduler sched(ref28m(), options(3, 32, with_draft(3)));
  GenerationParams p;
  p.sampling.temperature = 1.0f;
  p.sampling.top_k = 0;
  p.sampling.top_p = 1;
  p.sampling.min_p = 0;
  p.sampling.seed = 1234;
  p.max_tokens = 24;
  auto a = sched.submit(ref.prompt, p);
  auto b = sched.submit(ref.prompt, p);
  p.sampling.seed = 99;
  auto c = sched.submit(ref.prompt, p);
  for (auto* j : {&a, &b, &c}) (*j)->wait_finished();
  EXPECT_EQ(a->tokens(), b->tokens());
  EXPECT_NE(a->tokens(), c->tokens());
  EXPECT_EQ(a->tokens().size(), 24u);
  EXPECT_GT(a->stats().speculative->drafted, 0);
}

// Over HTTP: the timings carry the draft counts (whole and streamed responses), usage stays the token
// counts, /api/models names the draft, and a model the draft cannot draft for decodes plainly and says
// why.
TEST(ServerSpeculative, TimingsUsageAndModelsList) {
  ELM_REQUIRE_SHARED("models/ref-28m/reference.json");
  ELM_REQUIRE_SHARED("models/ref-draft-14m");
  ELM_REQUIRE_SHARED("models/stories260k/hf");
  const fs::path dir = fs::path(temp_dir()) / "models-speculative";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::create_directory_symlink(fs::absolute(shared("models/ref-28m")), dir / "ref-28m");
  fs::create_directory_symlink(fs::absolute(shared("models/stories260k/hf")), dir / "stories");
  ServeConfig c;
  c.models_dir = dir.string();
  c.parallel = 2;
  c.threads = 2;
  c.ctx = 96;
  c.speculation = with_draft(3);
  ModelManager models(c);
  ConvertTasks tasks(c.models_dir, elm_converter());
  HttpOptions h;
  h.port = 0;
  HttpServer http(models, tasks, h);
  const int port = http.bind();
  std::thread thread([&] { http.run(); });
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60);

  const GreedyRef ref = ref28m_greedy()[0];
  const int n = 12;
  const json body = {{"model", "ref-28m"}, {"prompt", ref.prompt}, {"max_tokens", n}, {"temperature", 0}};
  auto r = client.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  TextStream want(models.get("ref-28m")->model().tokenizer.get(), {});
  for (int t = 0; t < n; ++t) want.push(ref.ids[size_t(t)]);
  want.finish();
  EXPECT_EQ(j["choices"][0]["text"], want.text());
  EXPECT_EQ(j["usage"]["completion_tokens"], n);
  EXPECT_EQ(j["usage"]["total_tokens"], int(ref.prompt.size()) + n);
  const json& t = j["timings"];
  EXPECT_GT(t["draft_n"].get<int>(), 0) << t;
  EXPECT_GT(t["draft_n_accepted"].get<int>(), 0) << t;
  EXPECT_LE(t["draft_n_accepted"].get<int>(), t["draft_n"].get<int>());
  EXPECT_EQ(t["speculative"]["source"], "draft model ref-draft-14m");
  EXPECT_DOUBLE_EQ(t["speculative"]["acceptance_rate"].get<double>(),
                   t["draft_n_accepted"].get<double>() / t["draft_n"].get<double>());

  json stream_body = body;
  stream_body["stream"] = true;
  auto s = client.Post("/v1/completions", stream_body.dump(), "application/json");
  ASSERT_TRUE(s);
  const std::string& sse = s->body;
  const size_t last = sse.rfind("data: {");
  ASSERT_NE(last, std::string::npos) << sse;
  const json final_chunk = json::parse(sse.substr(last + 6, sse.find("\n\n", last) - last - 6));
  EXPECT_EQ(final_chunk["timings"]["draft_n"], t["draft_n"]) << final_chunk;  // greedy: the same rounds

  // stories260k has a 512-token vocabulary: no speculation for it, and the reason in the list.
  const json plain = {{"model", "stories"}, {"prompt", {1}}, {"max_tokens", 8}, {"temperature", 0}};
  auto p = client.Post("/v1/completions", plain.dump(), "application/json");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->status, 200) << p->body;
  EXPECT_FALSE(json::parse(p->body)["timings"].contains("draft_n"));
  auto l = client.Get("/api/models");
  ASSERT_TRUE(l);
  for (const json& m : json::parse(l->body)["models"]) {
    if (m["id"] == "ref-28m") {
      EXPECT_EQ(m["speculative"], "draft model ref-draft-14m");
    } else {
      ASSERT_TRUE(m.contains("speculative_error")) << m;
      EXPECT_NE(m["speculative_error"].get<std::string>().find("vocabulary has 49152 tokens, the target's 512"),
                std::string::npos)
          << m;
    }
  }
  http.stop();
  thread.join();
}
