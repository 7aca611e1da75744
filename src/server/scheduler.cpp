#include "server/scheduler.h"

#include <algorithm>
#include <optional>

#include "runtime/text_stream.h"
#include "server/api_error.h"

namespace elm::server {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "?";
}

namespace {
double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
}  // namespace

// ---- Job ----

Job::Update Job::next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !pending_.empty() || finished_; });
  Update u;
  if (!pending_.empty()) {
    u.text = std::move(pending_.front());
    pending_.pop_front();
  }
  u.finished = finished_ && pending_.empty();
  return u;
}

void Job::wait_finished() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return finished_; });
}

void Job::emit(std::string text) {
  if (text.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(std::move(text));
  }
  cv_.notify_all();
}

void Job::finish(FinishReason r, std::string text, std::vector<int32_t> tokens, JobStats s, std::string error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    reason_ = r;
    text_ = std::move(text);
    tokens_ = std::move(tokens);
    stats_ = s;
    error_ = std::move(error);
  }
  cv_.notify_all();
}

FinishReason Job::reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reason_;
}
std::string Job::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}
std::string Job::text() const {
  std::lock_guard<std::mutex> lock(mu_);
  return text_;
}
std::vector<int32_t> Job::tokens() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_;
}
JobStats Job::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

// ---- Scheduler ----

// A sequence slot of the executor's caches and the request occupying it.
struct Scheduler::Slot {
  std::shared_ptr<Job> job;
  uint64_t order = 0;     // admission order: earlier prompts are read first
  size_t n_fed = 0;       // prompt tokens already in the cache
  int32_t n_past = 0;     // positions in the cache
  int32_t next = -1;      // sampled token still to be fed (decoding), -1 while reading the prompt
  std::optional<Sampler> sampler;
  std::optional<TextStream> text;
  std::unique_ptr<Speculator> spec;  // this request's, when speculating
  std::vector<int32_t> generated;
  Clock::time_point admitted, first_token;
  bool reading_prompt() const { return n_fed < job->prompt_.size(); }
};

Scheduler::Scheduler(std::shared_ptr<const Model> model, SchedulerOptions options)
    : model_(std::move(model)), options_(std::move(options)) {
  ELM_CHECK(options_.runtime.max_seqs >= 1, "the scheduler needs at least one slot");
  options_.speculation.configure(options_.runtime);  // before the caches are made
  exec_ = std::make_unique<Executor>(model_, options_.runtime, options_.backends);
  slots_.resize(size_t(options_.runtime.max_seqs));
  if (options_.speculation.enabled()) start_speculation();
  thread_ = std::thread([this] { loop(); });
}

void Scheduler::start_speculation() {
  try {
    speculation_ = std::make_unique<SpeculatorFactory>(options_.speculation, model_,
                                                       SessionOptions{options_.runtime, options_.backends});
    speculation_name_ = speculation_->make(0, 0)->source().name();
  } catch (const Error& e) {
    speculation_.reset();
    speculation_error_ = e.what();
    return;
  }
  max_draft_ = max_draft_tokens(*model_, options_.runtime);
}

Scheduler::~Scheduler() { shutdown("the server is shutting down"); }

void Scheduler::shutdown(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
    stop_reason_ = why;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<Job> Scheduler::submit(std::vector<int32_t> prompt, GenerationParams params) {
  if (prompt.empty()) throw ApiError(400, "the prompt is empty", "messages");
  const int64_t vocab = model_->info.vocab_size;
  for (int32_t t : prompt)
    if (t < 0 || t >= vocab) throw ApiError(400, cat("token id ", t, " is outside the vocabulary (", vocab, ")"), "prompt");
  // The first generated token needs a position too.
  if (int64_t(prompt.size()) >= n_ctx())
    throw ApiError(400,
                   cat("the prompt has ", prompt.size(), " tokens but the context holds ", n_ctx(),
                       " (the prompt plus at least one generated token must fit): shorten the conversation"),
                   "messages", "context_length_exceeded");
  auto job = std::make_shared<Job>();
  job->prompt_ = std::move(prompt);
  job->params_ = std::move(params);
  job->submitted_ = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) throw ApiError(503, cat("model '", model_->info.name, "' is not available: ", stop_reason_));
    if (int(queue_.size()) >= options_.max_queue)
      throw ApiError(503, cat("the server is busy: ", queue_.size(), " requests are already waiting"), "",
                     "queue_full");
    queue_.push_back(job);
  }
  wake_.notify_all();
  return job;
}

Scheduler::Stats Scheduler::stats() const {
  Stats s;
  s.slots = int(slots_.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    s.active = busy_;
    s.queued = int(queue_.size());
  }
  s.steps = steps_;
  s.tokens_generated = generated_;
  s.prompt_tokens = prompt_tokens_;
  s.requests_done = done_;
  return s;
}

bool Scheduler::admit() {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.wait(lock, [&] { return stop_ || !queue_.empty() || busy_ > 0; });
  if (stop_) return false;
  std::vector<size_t> admitted;
  for (size_t s = 0; s < slots_.size() && !queue_.empty(); ++s) {
    if (slots_[s].job) continue;
    std::shared_ptr<Job> job = std::move(queue_.front());
    queue_.pop_front();
    Slot& sl = slots_[s];
    sl = Slot{};
    sl.job = std::move(job);
    sl.order = next_order_++;
    sl.admitted = Clock::now();
    sl.sampler.emplace(sl.job->params_.sampling);
    for (int32_t t : sl.job->prompt_) sl.sampler->accept(t);
    sl.text.emplace(model_->tokenizer.get(), sl.job->params_.stop);
    ++busy_;
    admitted.push_back(s);
  }
  lock.unlock();
  // A speculator of its own per request: its draws follow the request's seed, its statistics are the
  // request's.
  if (speculation_) {
    for (size_t s : admitted) {
      try {
        slots_[s].spec = speculation_->make(int(s), slots_[s].job->params_.sampling.seed);
      } catch (const std::exception& e) {
        release(int(s), FinishReason::Error, cat("speculative decoding failed: ", e.what()));
      }
    }
  }
  return true;
}

void Scheduler::loop() {
  while (admit()) {
    for (size_t s = 0; s < slots_.size(); ++s)
      if (slots_[s].job && slots_[s].job->cancelled()) release(int(s), FinishReason::Cancelled);
    step();
  }
  // Stopping: nothing queued or running will be served.
  std::deque<std::shared_ptr<Job>> queued;
  std::string why;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queued.swap(queue_);
    why = stop_reason_;
  }
  for (size_t s = 0; s < slots_.size(); ++s)
    if (slots_[s].job) release(int(s), FinishReason::Error, why);
  for (auto& j : queued) j->finish(FinishReason::Error, "", {}, {}, why);
}

// The logits rows one slot gets in a step: its round (its next token, and its drafts when
// speculating) or the last token of its prompt.
struct Scheduler::Rows {
  int slot;
  int64_t first, n;
  bool decoding;
};

void Scheduler::step() {
  const int64_t max_batch = options_.runtime.max_batch;
  // Drafting runs kernels too: the whole step holds the compute lock.
  std::unique_lock<std::mutex> compute;
  if (options_.compute_lock) compute = std::unique_lock<std::mutex>(*options_.compute_lock);
  Batch batch;
  std::vector<Rows> outputs;  // in row order
  // Every generating sequence advances each step...
  int64_t n_rows = add_rounds(batch, outputs);
  // ...and the rest of the batch reads prompts, oldest request first.
  std::vector<int> readers;
  for (size_t s = 0; s < slots_.size(); ++s)
    if (slots_[s].job && slots_[s].reading_prompt()) readers.push_back(int(s));
  std::sort(readers.begin(), readers.end(), [&](int a, int b) { return slots_[size_t(a)].order < slots_[size_t(b)].order; });
  std::vector<std::pair<int, size_t>> fed;  // (slot, prompt tokens added this step)
  for (int s : readers) {
    Slot& sl = slots_[size_t(s)];
    const auto& prompt = sl.job->prompt_;
    const size_t n = std::min(prompt.size() - sl.n_fed, size_t(max_batch - batch.size()));
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) {
      const size_t t = sl.n_fed + i;
      const bool last = t + 1 == prompt.size();
      batch.add(prompt[t], sl.n_past + int32_t(i), s, last);
      if (last) outputs.push_back({s, n_rows++, 1, false});
    }
    fed.emplace_back(s, n);
  }
  if (batch.size() == 0) return;

  // Requests that decode greedily need only each row's argmax: when every row is theirs, the argmaxes
  // are taken where the logits are (on the device for GPU backends) and no logits cross to the host.
  bool argmax_only = true;
  for (const Rows& o : outputs) argmax_only = argmax_only && slots_[size_t(o.slot)].sampler->config().picks_argmax();
  const HostTensor* logits = nullptr;
  std::vector<int32_t> argmaxes;
  try {
    if (argmax_only) argmaxes = exec_->step_argmax(batch);
    else logits = &exec_->step(batch);
  } catch (const std::exception& e) {
    // Nothing in this batch can continue; the other slots were not touched.
    for (int64_t t = 0; t < batch.size(); ++t) {
      const int s = batch.seqs[size_t(t)];
      if (slots_[size_t(s)].job) release(s, FinishReason::Error, cat("generation failed: ", e.what()));
    }
    return;
  }
  ++steps_;
  for (auto [s, n] : fed) {
    slots_[size_t(s)].n_fed += n;
    slots_[size_t(s)].n_past += int32_t(n);
    prompt_tokens_ += n;
  }
  for (const Rows& o : outputs) take_rows(o, logits, argmaxes);
}

int64_t Scheduler::add_rounds(Batch& batch, std::vector<Rows>& outputs) {
  const int64_t max_batch = options_.runtime.max_batch;
  std::vector<int> decoding;
  for (size_t s = 0; s < slots_.size(); ++s)
    if (slots_[s].job && !slots_[s].reading_prompt()) decoding.push_back(int(s));
  // Each round's length first: drafts take the room the generating slots after it leave (a row each).
  std::vector<int> rounds;
  std::vector<Speculator*> specs;
  std::vector<const Sampler*> samplers;
  int64_t used = batch.size();
  for (size_t i = 0; i < decoding.size() && used < max_batch; ++i) {
    Slot& sl = slots_[size_t(decoding[i])];
    rounds.push_back(decoding[i]);
    used += 1;
    if (!sl.spec) continue;
    const int64_t room = max_batch - used - int64_t(decoding.size() - i - 1);
    used += sl.spec->plan(sl.next, draft_limit(sl, room));
    specs.push_back(sl.spec.get());
    samplers.push_back(&*sl.sampler);
  }
  // Then every slot's drafts at once: a draft model reads one token of every drafting slot per pass.
  try {
    Speculator::draft_planned(specs, samplers);
  } catch (const std::exception& e) {
    // A failed pass leaves every drafting sequence of it unsure: those requests end.
    for (int s : rounds)
      if (slots_[size_t(s)].spec) release(s, FinishReason::Error, cat("drafting failed: ", e.what()));
  }
  int64_t n_rows = 0;
  for (int s : rounds) {
    Slot& sl = slots_[size_t(s)];
    if (!sl.job) continue;  // released above
    const std::span<const int32_t> feed = sl.spec ? std::span<const int32_t>(sl.spec->feed()) : std::span(&sl.next, 1);
    for (size_t j = 0; j < feed.size(); ++j) batch.add(feed[j], sl.n_past + int32_t(j), int32_t(s), true);
    outputs.push_back({s, n_rows, int64_t(feed.size()), true});
    n_rows += int64_t(feed.size());
  }
  return n_rows;
}

void Scheduler::take_rows(const Rows& o, const HostTensor* logits, std::span<const int32_t> argmaxes) {
  Slot& sl = slots_[size_t(o.slot)];
  std::span<const float> rows;
  if (logits) rows = std::span<const float>(logits->row(o.first), size_t(o.n * logits->cols));
  else argmaxes = argmaxes.subspan(size_t(o.first), size_t(o.n));
  if (o.decoding && sl.spec) {
    const SpeculativeRound& round =
        logits ? sl.spec->verify(rows, *sl.sampler) : sl.spec->verify_argmax(argmaxes, *sl.sampler);
    return take_round(o.slot, round, o.n);
  }
  const int32_t tok = logits ? sl.sampler->sample(rows) : argmaxes[0];
  if (!logits) sl.sampler->accept(tok);  // what sample() records
  if (o.decoding) {
    ++sl.n_past;  // its token is in the cache now
    take(o.slot, tok);
  } else if (take(o.slot, tok) && sl.spec) {
    // The prompt is read and its first token out: a draft model reads the prompt now, outside the time
    // to first token.
    try {
      sl.spec->fed_prompt(sl.job->prompt_);
    } catch (const std::exception& e) {
      release(o.slot, FinishReason::Error, cat("drafting failed: ", e.what()));
    }
  }
}

int Scheduler::draft_limit(const Slot& sl, int64_t room) const {
  // The round reads pending + k tokens at positions n_past..n_past + k, all inside the context, and
  // makes up to k + 1 tokens, no more than the request still wants.
  int64_t k = std::min<int64_t>({room, max_draft_, n_ctx() - int64_t(sl.n_past) - 1});
  const int max_tokens = sl.job->params_.max_tokens;
  if (max_tokens >= 0) k = std::min<int64_t>(k, max_tokens - int64_t(sl.generated.size()) - 1);
  return int(std::max<int64_t>(k, 0));
}

void Scheduler::take_round(int s, const SpeculativeRound& round, int64_t n_read) {
  Slot& sl = slots_[size_t(s)];
  const int32_t base = sl.n_past;
  if (round.keep < n_read) exec_->seq_truncate(s, base + round.keep);  // forget the rejected drafts
  for (size_t i = 0; i < round.tokens.size(); ++i) {
    // Token i follows the round's first i + 1 tokens: take() checks the context as plain decoding
    // would have after reading them.
    sl.n_past = base + 1 + int32_t(i);
    if (!take(s, round.tokens[i])) return;
  }
}

bool Scheduler::take(int s, int32_t tok) {
  Slot& sl = slots_[size_t(s)];
  const GenerationParams& p = sl.job->params_;
  if (sl.generated.empty()) sl.first_token = Clock::now();
  std::optional<FinishReason> end;
  if (p.stop_at_eos && model_->info.is_eos(tok)) {
    end = FinishReason::Stop;
  } else {
    sl.generated.push_back(tok);
    ++generated_;
    const bool hit_stop = sl.text->push(tok);
    sl.job->emit(sl.text->take());
    if (hit_stop) end = FinishReason::Stop;
    else if (p.max_tokens >= 0 && int(sl.generated.size()) >= p.max_tokens) end = FinishReason::Length;
    else if (sl.n_past >= n_ctx()) end = FinishReason::Length;  // no position left for it
  }
  if (end) {
    release(s, *end);
    return false;
  }
  sl.next = tok;
  return true;
}

void Scheduler::release(int s, FinishReason r, const std::string& error) {
  Slot& sl = slots_[size_t(s)];
  const Clock::time_point now = Clock::now();
  JobStats st;
  st.prompt_tokens = int(sl.job->prompt_.size());
  if (sl.spec) st.speculative = sl.spec->stats();
  st.completion_tokens = int(sl.generated.size());
  st.queue_ms = ms_between(sl.job->submitted_, sl.admitted);
  const bool started = sl.first_token != Clock::time_point{};
  if (started) {
    st.prompt_ms = ms_between(sl.admitted, sl.first_token);
    st.ttft_ms = ms_between(sl.job->submitted_, sl.first_token);
    st.gen_ms = ms_between(sl.first_token, now);
  }
  if (r != FinishReason::Cancelled && r != FinishReason::Error) {
    sl.text->finish();
    sl.job->emit(sl.text->take());
  }
  // The slot is freed and counted before the job is told it finished, so whoever waits on the job
  // sees the scheduler's statistics without it.
  std::shared_ptr<Job> job = std::move(sl.job);
  std::string text = sl.text->text();
  std::vector<int32_t> generated = std::move(sl.generated);
  exec_->seq_reset(s);  // the slot is free for the next request right away
  sl = Slot{};
  ++done_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    --busy_;
  }
  job->finish(r, std::move(text), std::move(generated), st, error);
}

}  // namespace elm::server
