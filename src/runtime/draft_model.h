// Drafting with a smaller model that shares the target's vocabulary: it runs in its own Session,
// samples each draft token from its own distribution under the target's sampling config (or takes its
// argmax when sampling is greedy), and rolls its cache back to whatever part of its proposal the
// target kept.
#pragma once
#include <memory>
#include <random>

#include "runtime/draft_source.h"
#include "runtime/session.h"

namespace elm {

// Throws elm::Error unless `draft` can draft for `target`: the same vocabulary size and, when both come
// with tokenizers, the same piece for every id.
void check_draft_compatible(const Model& target, const Model& draft);

class DraftModel : public DraftSource {
 public:
  // Drafts on sequence `seq` of `session` (the server may share one draft session across its slots).
  // `seed` seeds the draft's own draws, kept apart from the target's acceptance draws. Checks that the
  // session's model can draft for `target` (check_draft_compatible).
  DraftModel(std::shared_ptr<Session> session, int seq, const Model& target, uint64_t seed);
  // For a session whose model was checked against the target already (SpeculatorFactory checks once,
  // then makes a DraftModel per request: the check compares every token's piece, milliseconds each).
  DraftModel(std::shared_ptr<Session> session, int seq, uint64_t seed);
  std::string name() const override { return "draft model " + session_->model().info.name; }
  void prefill(std::span<const int32_t> history) override;
  void propose(std::span<const int32_t> history, int max_tokens, const Sampler& sampler, Draft& out) override;
  // Draft models on one session draft together: each forward pass reads one token of every sequence
  // still drafting (the first pass: what each has not read yet), so S server slots cost k passes of S
  // tokens instead of S x k passes of one.
  const void* batch_key() const override { return session_.get(); }
  void propose_together(std::span<DraftSource* const> sources, std::span<const DraftRequest> requests) override;

 private:
  // Brings the draft's sequence to `history` and returns the tokens it still has to read (at least one:
  // the logits after the last are needed).
  std::span<const int32_t> resync(std::span<const int32_t> history);
  // resync(), then reads them: the logits after the last token of `history`.
  std::span<const float> sync(std::span<const int32_t> history);
  // max_tokens capped by what this session can draft and roll back after reading `history`.
  int cap(int max_tokens, size_t history) const;
  std::shared_ptr<Session> session_;
  int seq_;
  std::vector<int32_t> fed_;  // what the draft's sequence holds
  std::mt19937_64 rng_;
};

}  // namespace elm
