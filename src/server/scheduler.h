// Continuous batching: one scheduler per loaded model owns an Executor whose caches hold `slots`
// sequences (RuntimeConfig::max_seqs). Each step it builds one Batch from the next token of every
// request that is generating and chunks of the prompts still being read, runs it, samples every
// request's next token from its logits row and hands the new text to the request's Job. Requests
// beyond the slots wait in a FIFO queue; a cancelled request (its client went away) gives its slot
// back before the next step.
//
// Speculative decoding (SchedulerOptions::speculation): every generating request drafts up to k tokens
// (its own Speculator; draft models run one draft session with a sequence per slot) and its pending
// token and drafts all go into the step's one batch; each request then keeps the run its sampler
// accepts, rolls its sequence back past the first rejection and hands the round's tokens to its Job one
// by one, through the same stop rules as plain decoding.
//
// Threads: one scheduler thread per model runs the steps (it is also the calling thread of the CPU
// backend's pool); HTTP threads only submit, read and cancel Jobs. Schedulers of different models
// share `compute_lock`, so two models never run kernels at the same time on the same cores.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "runtime/executor.h"
#include "runtime/sampler.h"
#include "runtime/speculator_factory.h"

namespace elm::server {

struct GenerationParams {
  SamplerConfig sampling;
  int max_tokens = -1;  // < 0: until EOS or the context is full
  std::vector<std::string> stop;
  bool stop_at_eos = true;
};

// eos and stop strings are both "stop" in the API; length covers max_tokens and a full context.
enum class FinishReason { Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

struct JobStats {
  int prompt_tokens = 0, completion_tokens = 0;
  double queue_ms = 0;   // submitted -> given a slot
  double prompt_ms = 0;  // given a slot -> first token sampled (reading the prompt)
  double ttft_ms = 0;    // submitted -> first token
  double gen_ms = 0;     // first token -> last token
  std::optional<SpeculativeStats> speculative;  // when the request was decoded speculatively
  double prompt_tokens_per_s() const { return prompt_ms > 0 ? prompt_tokens * 1000.0 / prompt_ms : 0; }
  // Decode speed: tokens after the first over the time they took.
  double tokens_per_s() const { return gen_ms > 0 ? (completion_tokens - 1) * 1000.0 / gen_ms : 0; }
};

// One request's output channel, shared by the scheduler (producer) and an HTTP thread (consumer).
class Job {
 public:
  struct Update {
    std::string text;       // the oldest piece not yet taken (one token's text), or empty
    bool finished = false;  // no more text will come
  };
  // Waits up to `timeout` for a piece or the end. Pieces come one at a time, as they were emitted, so
  // a stream carries one chunk per token however fast the model runs (as OpenAI and llama.cpp do).
  Update next(std::chrono::milliseconds timeout);
  void wait_finished();
  // The client is gone or lost interest: the scheduler drops the request before its next step.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  // Valid once finished.
  FinishReason reason() const;
  std::string error() const;  // for FinishReason::Error
  std::string text() const;   // the whole generated text (stop string cut off)
  std::vector<int32_t> tokens() const;
  JobStats stats() const;

 private:
  friend class Scheduler;
  using Clock = std::chrono::steady_clock;
  void emit(std::string text);
  void finish(FinishReason r, std::string text, std::vector<int32_t> tokens, JobStats s, std::string error = "");

  std::vector<int32_t> prompt_;  // set at submit, read by the scheduler thread
  GenerationParams params_;
  Clock::time_point submitted_;
  std::atomic<bool> cancelled_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> pending_;
  bool finished_ = false;
  FinishReason reason_ = FinishReason::Stop;
  std::string error_, text_;
  std::vector<int32_t> tokens_;
  JobStats stats_;
};

struct SchedulerOptions {
  RuntimeConfig runtime;  // max_seqs = parallel slots
  std::vector<std::string> backends = {"cpu"};
  int max_queue = 1024;  // requests waiting for a slot beyond this get 503
  std::shared_ptr<std::mutex> compute_lock;  // shared by all schedulers of a server; may be null
  // Speculative decoding for every request, when enabled. Drafting that cannot be set up for the model
  // (a draft with another vocabulary, a self-draft spec the model does not fit) leaves the model
  // decoding plainly, with the reason in speculation_error().
  SpeculationConfig speculation;
};

class Scheduler {
 public:
  Scheduler(std::shared_ptr<const Model> model, SchedulerOptions options);
  ~Scheduler();  // finishes every request still queued or running with an error
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. Throws ApiError: 400 for an empty prompt, ids outside the vocabulary or a prompt
  // that leaves no room in the context; 503 when the queue is full or the scheduler has stopped.
  std::shared_ptr<Job> submit(std::vector<int32_t> prompt, GenerationParams params);
  // Stops the thread; requests still queued or running finish with FinishReason::Error.
  void shutdown(const std::string& why = "the model was unloaded");

  struct Stats {
    int slots = 0, active = 0, queued = 0;
    uint64_t steps = 0, tokens_generated = 0, prompt_tokens = 0, requests_done = 0;
  };
  Stats stats() const;
  int n_ctx() const { return options_.runtime.n_ctx; }
  // The draft source requests use ("" when decoding plainly), and why the configured speculation is off.
  const std::string& speculation() const { return speculation_name_; }
  const std::string& speculation_error() const { return speculation_error_; }
  const Model& model() const { return *model_; }
  std::shared_ptr<const Model> model_ptr() const { return model_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Slot;
  void loop();
  bool admit();  // moves queued jobs into free slots; false when stopping
  struct Rows;
  void start_speculation();  // the constructor's part for SchedulerOptions::speculation
  void step();
  // Adds every generating slot's round to the batch (its next token, and its drafts when speculating);
  // returns the number of logits rows they take.
  int64_t add_rounds(Batch& batch, std::vector<Rows>& outputs);
  int draft_limit(const Slot& sl, int64_t room) const;
  // Samples or verifies a slot's rows of the step's output: logits, or argmaxes when logits is null.
  void take_rows(const Rows& rows, const HostTensor* logits, std::span<const int32_t> argmaxes);
  // Hands a generated token to the slot's job; false when the request finished with it.
  bool take(int slot, int32_t token);
  void take_round(int slot, const SpeculativeRound& round, int64_t n_read);
  void release(int slot, FinishReason r, const std::string& error = "");

  std::shared_ptr<const Model> model_;
  SchedulerOptions options_;
  std::unique_ptr<Executor> exec_;
  std::vector<Slot> slots_;  // scheduler thread only
  std::unique_ptr<SpeculatorFactory> speculation_;  // null: plain decoding
  std::string speculation_name_, speculation_error_;
  int max_draft_ = 0;  // max_draft_tokens() of the target's runtime config
  uint64_t next_order_ = 0;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  int busy_ = 0;  // slots holding a job
  bool stop_ = false;
  std::string stop_reason_;
  std::atomic<uint64_t> steps_{0}, generated_{0}, prompt_tokens_{0}, done_{0};
  std::thread thread_;
};

}  // namespace elm::server
