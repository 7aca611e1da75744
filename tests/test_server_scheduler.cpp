// The continuous-batching scheduler against stories260k's float64 greedy reference: requests decoded
// together in one batch, joining at different times and reading prompts of different lengths, must
// each produce exactly the ids a lone greedy decode produces.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "server/api_error.h"
#include "server/scheduler.h"
#include "server_fixtures.h"
#include "util.h"

using namespace elm;
using namespace elm::server;
using namespace elm::test;

namespace {

// [BOS] + the first k reference tokens; the reference continues it with greedy[k:].
std::vector<int32_t> prefix(const StoriesReference& ref, size_t k) {
  std::vector<int32_t> p = ref.prompt;
  p.insert(p.end(), ref.greedy.begin(), ref.greedy.begin() + long(k));
  return p;
}

}  // namespace

TEST(ServerScheduler, BatchedRequestsMatchTheGreedyReference) {
  ELM_REQUIRE_SHARED("models/stories260k/reference_greedy.json");
  const StoriesReference ref = stories_reference();
  SchedulerOptions o = scheduler_options(4, 16);
  o.compute_lock = std::make_shared<std::mutex>();
  Scheduler sched(stories_with_char_tokenizer(), o);
  // Six requests on four slots: two wait in the queue. Prompts of 1 to 41 tokens, read in chunks
  // of at most 16 tokens alongside the decoding of the others. The scheduler steps only once all are
  // submitted (it takes the compute lock for each step), however slowly this thread gets to submit them.
  const size_t starts[] = {0, 40, 7, 25, 3, 12};
  const int n_new = 30;
  std::vector<std::shared_ptr<Job>> jobs;
  {
    std::lock_guard<std::mutex> hold(*o.compute_lock);
    for (size_t k : starts) jobs.push_back(sched.submit(prefix(ref, k), greedy_params(n_new)));
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    jobs[i]->wait_finished();
    const size_t k = starts[i];
    const std::vector<int32_t> want(ref.greedy.begin() + long(k), ref.greedy.begin() + long(k) + n_new);
    EXPECT_EQ(jobs[i]->tokens(), want) << "request " << i << " (prompt of " << k + 1 << " tokens)";
    EXPECT_EQ(jobs[i]->reason(), FinishReason::Length);
    const JobStats st = jobs[i]->stats();
    EXPECT_EQ(st.prompt_tokens, int(k + 1));
    EXPECT_EQ(st.completion_tokens, n_new);
  }
  // Batching, not taking turns: six requests of 30 tokens took far fewer steps than 6 * 30. Two
  // rounds of slots take about 2 * 30 steps (and a few for the prompts).
  const Scheduler::Stats st = sched.stats();
  EXPECT_EQ(st.tokens_generated, 6u * n_new);
  EXPECT_LT(st.steps, 3u * n_new);
  EXPECT_EQ(st.active, 0);
  EXPECT_EQ(st.queued, 0);
}

TEST(ServerScheduler, SlotsAreReusedAfterRequestsFinish) {
  ELM_REQUIRE_SHARED("models/stories260k/reference_greedy.json");
  const StoriesReference ref = stories_reference();
  Scheduler sched(stories_with_char_tokenizer(), scheduler_options(1));
  // One slot, three requests in turn: each must start from a clean cache.
  for (size_t k : {5, 0, 20}) {
    auto job = sched.submit(prefix(ref, k), greedy_params(10));
    job->wait_finished();
    EXPECT_EQ(job->tokens(), std::vector<int32_t>(ref.greedy.begin() + long(k), ref.greedy.begin() + long(k) + 10));
  }
}

TEST(ServerScheduler, CancelledRequestFreesItsSlot) {
  ELM_REQUIRE_SHARED("models/stories260k/reference_greedy.json");
  const StoriesReference ref = stories_reference();
  Scheduler sched(stories_with_char_tokenizer(), scheduler_options(1));
  auto endless = sched.submit(prefix(ref, 0), greedy_params(-1));  // until the context is full
  auto waiting = sched.submit(prefix(ref, 0), greedy_params(5));
  // The first request streams; the second waits in the queue for the only slot.
  Job::Update u = endless->next(std::chrono::seconds(10));
  EXPECT_FALSE(u.finished);
  EXPECT_EQ(sched.stats().queued, 1);
  endless->cancel();
  waiting->wait_finished();
  endless->wait_finished();
  EXPECT_EQ(endless->reason(), FinishReason::Cancelled);
  EXPECT_LT(endless->tokens().size(), 200u);  // stopped well before the 256-token context
  EXPECT_EQ(waiting->tokens(), std::vector<int32_t>(ref.greedy.begin(), ref.greedy.begin() + 5));
}

TEST(ServerScheduler, GenerationStopsAtTheEndOfTheContext) {
  ELM_REQUIRE_SHARED("models/stories260k/reference_greedy.json");
  const StoriesReference ref = stories_reference();
  SchedulerOptions o = scheduler_options(2);
  o.runtime.n_ctx = 32;
  Scheduler sched(stories_with_char_tokenizer(), o);
  auto job = sched.submit(prefix(ref, 9), greedy_params(-1));  // 10 prompt tokens
  job->wait_finished();
  EXPECT_EQ(job->reason(), FinishReason::Length);
  // Positions 0..31: the prompt fills 10, the generated tokens fed back the other 22, plus the last
  // sampled token, which needs no position of its own.
  EXPECT_EQ(job->tokens().size(), 23u);
  EXPECT_EQ(job->tokens(), std::vector<int32_t>(ref.greedy.begin() + 9, ref.greedy.begin() + 32));
}

TEST(ServerScheduler, RejectsPromptsThatDoNotFit) {
  ELM_REQUIRE_SHARED("models/stories260k/hf/config.json");
  SchedulerOptions o = scheduler_options(1);
  o.runtime.n_ctx = 16;
  Scheduler sched(stories_with_char_tokenizer(), o);
  auto status = [&](std::vector<int32_t> prompt) {
    try {
      sched.submit(std::move(prompt), greedy_params(1));
    } catch (const ApiError& e) {
      return e.status();
    }
    return 0;
  };
  EXPECT_EQ(status(std::vector<int32_t>(16, 5)), 400);  // no room for a generated token
  EXPECT_EQ(status({}), 400);
  EXPECT_EQ(status({1, 512}), 400);  // outside the 512-token vocabulary
  EXPECT_EQ(status({1, -3}), 400);
  EXPECT_EQ(status(std::vector<int32_t>(15, 5)), 0);  // fits, with one position to spare
}

TEST(ServerScheduler, StreamsOnePiecePerToken) {
  ELM_REQUIRE_SHARED("models/stories260k/reference_greedy.json");
  const StoriesReference ref = stories_reference();
  Scheduler sched(stories_with_char_tokenizer(), scheduler_options(1));
  auto job = sched.submit(ref.prompt, greedy_params(30));
  job->wait_finished();  // everything is generated before the first read: pieces must not merge
  std::vector<std::string> pieces;
  for (;;) {
    Job::Update u = job->next(std::chrono::seconds(10));
    if (!u.text.empty()) pieces.push_back(u.text);
    if (u.finished) break;
  }
  // One character per token, so every piece is exactly one generated token's character.
  ASSERT_EQ(pieces.size(), 30u);
  for (size_t i = 0; i < pieces.size(); ++i) EXPECT_EQ(pieces[i], std::string(1, CharTokenizer::char_of(ref.greedy[i])));
}

TEST(ServerScheduler, StopStringsEosAndStreamedText) {
  ELM_REQUIRE_SHARED("models/stories260k/reference_greedy.json");
  const StoriesReference ref = stories_reference();
  Scheduler sched(stories_with_char_tokenizer(), scheduler_options(2));
  // With one character per token, the reference continuation's text is known in advance.
  std::string expected;
  for (int32_t id : ref.greedy) expected += CharTokenizer::char_of(id);
  const std::string stop = expected.substr(20, 3);
  const size_t cut = expected.find(stop);  // the first occurrence, maybe earlier than 20
  GenerationParams p = greedy_params(60);
  p.stop = {stop};
  auto job = sched.submit(ref.prompt, p);
  std::string streamed;
  for (;;) {
    Job::Update u = job->next(std::chrono::seconds(10));
    streamed += u.text;
    if (u.finished) break;
  }
  EXPECT_EQ(job->reason(), FinishReason::Stop);
  EXPECT_EQ(job->text(), expected.substr(0, cut));
  EXPECT_EQ(streamed, job->text());

  // EOS: make the reference's 6th token an end-of-sequence id.
  auto model = stories_with_char_tokenizer();
  model->info.eos_token_ids = {ref.greedy[5]};
  Scheduler eos_sched(model, scheduler_options(1));
  GenerationParams q = greedy_params(50);
  q.stop_at_eos = true;
  auto e = eos_sched.submit(ref.prompt, q);
  e->wait_finished();
  EXPECT_EQ(e->reason(), FinishReason::Stop);
  EXPECT_EQ(e->tokens(), std::vector<int32_t>(ref.greedy.begin(), ref.greedy.begin() + 5));
}

TEST(ServerScheduler, SameSeedSameSample) {
  ELM_REQUIRE_SHARED("models/stories260k/hf/config.json");
  Scheduler sched(stories_with_char_tokenizer(), scheduler_options(3));
  GenerationParams p;
  p.sampling.temperature = 1.0f;
  p.sampling.seed = 1234;
  p.max_tokens = 40;
  // Two requests with one seed, batched with a third of another seed: the pair agrees, so a
  // request's samples do not depend on what else is in the batch.
  auto a = sched.submit({1}, p);
  auto b = sched.submit({1}, p);
  p.sampling.seed = 99;
  auto c = sched.submit({1}, p);
  a->wait_finished();
  b->wait_finished();
  c->wait_finished();
  EXPECT_EQ(a->tokens(), b->tokens());
  EXPECT_NE(a->tokens(), c->tokens());
}

TEST(ServerScheduler, ShutdownFailsWaitingRequests) {
  ELM_REQUIRE_SHARED("models/stories260k/hf/config.json");
  auto sched = std::make_unique<Scheduler>(stories_with_char_tokenizer(), scheduler_options(1));
  auto running = sched->submit({1}, greedy_params(-1));
  auto queued = sched->submit({1}, greedy_params(5));
  running->next(std::chrono::seconds(10));
  sched->shutdown("the model was unloaded");
  running->wait_finished();
  queued->wait_finished();
  EXPECT_EQ(running->reason(), FinishReason::Error);
  EXPECT_EQ(queued->reason(), FinishReason::Error);
  EXPECT_EQ(queued->error(), "the model was unloaded");
  EXPECT_THROW(sched->submit({1}, greedy_params(1)), ApiError);
}
