// Continuous batching: one scheduler per loaded model owns an Executor whose caches hold `slots`
// sequences (RuntimeConfig::max_seqs). Each step it builds one Batch from the next token of every
// request that is generating and chunks of the prompts still being read, runs it, samples every
// request's next token from its logits row and hands the new text to the request's Job. Requests
// beyond the slots wait in a FIFO queue; a cancelled request (its client went away) gives its slot
// back before the next step.
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
#include <string>
#include <thread>
#include <vector>

#include "runtime/executor.h"
#include "runtime/sampler.h"

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
  const Model& model() const { return *model_; }
  std::shared_ptr<const Model> model_ptr() const { return model_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Slot;
  void loop();
  bool admit();  // moves queued jobs into free slots; false when stopping
  void step();
  void advance(int slot, const float* logits);
  void release(int slot, FinishReason r, const std::string& error = "");

  std::shared_ptr<const Model> model_;
  SchedulerOptions options_;
  std::unique_ptr<Executor> exec_;
  std::vector<Slot> slots_;  // scheduler thread only
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
