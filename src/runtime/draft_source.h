// Where speculative drafts come from. A draft source proposes tokens to follow the text so far; the
// target then checks them all in one forward pass (speculative.h). Sources: a smaller model with the
// same vocabulary (draft_model.h), n-gram lookup in the prompt and output (prompt_lookup.h).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/speculative_accept.h"

namespace elm {

struct Draft {
  std::vector<int32_t> tokens;
  // q[i]: the distribution tokens[i] was drawn from; empty when it was chosen deterministically.
  std::vector<Distribution> q;
  void clear() { tokens.clear(), q.clear(); }
  size_t size() const { return tokens.size(); }
};

// One sequence's part of a proposal made for several sequences at once (DraftSource::propose_together).
struct DraftRequest {
  std::span<const int32_t> history;
  int max_tokens = 0;
  const Sampler* sampler = nullptr;
  Draft* out = nullptr;
};

class DraftSource {
 public:
  virtual ~DraftSource() = default;
  virtual std::string name() const = 0;
  // Called once the target has read a prompt: `history` is everything its sequence now holds. A draft
  // model reads it here, so that its prefill counts as prompt time.
  virtual void prefill(std::span<const int32_t> history) {}
  // Proposes up to max_tokens (>= 1) tokens to follow `history`, the whole text of the sequence.
  // `sampler` is the target's: its config (and penalty history) define the draft's distributions for
  // sources that sample. Histories of successive calls may share any prefix (after a rejection the
  // target rolls back), so sources that keep state must resynchronize on it.
  virtual void propose(std::span<const int32_t> history, int max_tokens, const Sampler& sampler, Draft& out) = 0;

  // Sources that can draft for several sequences in one forward pass a token (draft models sharing one
  // session) return the same non-null key. propose_together() is then called on one of them with all
  // of them (requests[i] for sources[i]); by default each proposes on its own.
  virtual const void* batch_key() const { return nullptr; }
  virtual void propose_together(std::span<DraftSource* const> sources, std::span<const DraftRequest> requests) {
    for (size_t i = 0; i < sources.size(); ++i)
      sources[i]->propose(requests[i].history, requests[i].max_tokens, *requests[i].sampler, *requests[i].out);
  }
};

}  // namespace elm
