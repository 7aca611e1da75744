// Session: sequences of tokens fed through an Executor, with their positions tracked. One session
// holds up to RuntimeConfig::max_seqs independent sequences (the server's parallel slots).
#pragma once
#include <memory>
#include <span>
#include <vector>

#include "runtime/executor.h"

namespace elm {

// Tokens for one sequence of a multi-sequence step (Session::feed_seqs).
struct SeqTokens {
  int seq = 0;
  std::span<const int32_t> tokens;
};

struct SessionOptions {
  RuntimeConfig runtime;
  std::vector<std::string> backends = {"cpu"};
};

class Session {
 public:
  Session(std::shared_ptr<const Model> model, const SessionOptions& options);

  // Appends tokens to sequence `seq` and returns the logits after the last one (vocab floats, valid
  // until the next call). Long inputs run in steps of max_batch tokens. Throws elm::Error when the
  // sequence would outgrow the context.
  std::span<const float> feed(int seq, std::span<const int32_t> tokens);
  // Like feed, but returns the greedy next token (the argmax of the last logits, lowest id on ties),
  // taken on the device when the backend can.
  int32_t feed_argmax(int seq, std::span<const int32_t> tokens);
  // Like feed, but returns the logits after every token ([tokens.size(), vocab], row-major).
  std::vector<float> feed_all(int seq, std::span<const int32_t> tokens);
  // Like feed_all, but returns only the greedy next token after every token (argmax, lowest id on
  // ties), taken on the device when the backend can: no logits cross to the host.
  std::vector<int32_t> feed_all_argmax(int seq, std::span<const int32_t> tokens);

  // Appends tokens to several sequences (each at most once) in as few forward steps as max_batch
  // allows, one when they fit, and returns the logits after the last token of each part
  // ([parts.size(), width] row-major; width as wide as the logits, see vocab()).
  std::vector<float> feed_seqs(std::span<const SeqTokens> parts, int64_t* width = nullptr);
  // Like feed_seqs, but returns the greedy next token after each part (feed_argmax).
  std::vector<int32_t> feed_seqs_argmax(std::span<const SeqTokens> parts);

  int32_t n_past(int seq) const { return n_past_.at(size_t(seq)); }
  void reset(int seq);
  void truncate(int seq, int32_t n_past);  // keep the first n_past tokens (speculative rollback)

  int64_t n_ctx() const { return executor_->config().n_ctx; }
  // The model's vocabulary. Logits rows are that wide, except a draft's narrowed output layer's
  // (SubModelSpec::vocab), which scores only the first ids.
  int64_t vocab() const { return model_->info.vocab_size; }
  const Model& model() const { return *model_; }
  std::shared_ptr<const Model> model_ptr() const { return model_; }
  Executor& executor() { return *executor_; }

 private:
  void check_room(int seq, size_t n) const;
  // The feed* methods but feed_all*: runs the steps, handing each step's batch to `run`.
  template <class Run>
  void feed_parts(std::span<const SeqTokens> parts, Run&& run);
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Executor> executor_;
  std::vector<int32_t> n_past_;
  std::vector<float> last_;
};

}  // namespace elm
