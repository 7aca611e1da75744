#include "runtime/draft_model.h"

#include <algorithm>

#include "core/error.h"

namespace elm {

void check_draft_compatible(const Model& target, const Model& draft) {
  const std::string what = "the draft model " + draft.info.name + " cannot draft for " + target.info.name + ": ";
  ELM_CHECK(draft.info.vocab_size == target.info.vocab_size, what, "its vocabulary has ", draft.info.vocab_size,
            " tokens, the target's ", target.info.vocab_size, " (speculative decoding needs the same tokenizer)");
  if (!target.tokenizer || !draft.tokenizer) return;
  const Tokenizer &a = *target.tokenizer, &b = *draft.tokenizer;
  ELM_CHECK(a.vocab_size() == b.vocab_size(), what, "its tokenizer has ", b.vocab_size(), " tokens, the target's ",
            a.vocab_size());
  for (int32_t id = 0; id < int32_t(a.vocab_size()); ++id)
    ELM_CHECK(a.id_to_piece(id) == b.id_to_piece(id), what, "token ", id, " is '", b.id_to_piece(id),
              "' in its tokenizer and '", a.id_to_piece(id), "' in the target's");
}

DraftModel::DraftModel(std::shared_ptr<Session> session, int seq, const Model& target, uint64_t seed)
    : DraftModel(std::move(session), seq, seed) {
  check_draft_compatible(target, session_->model());
}

DraftModel::DraftModel(std::shared_ptr<Session> session, int seq, uint64_t seed)
    : session_(std::move(session)), seq_(seq), rng_(seed) {
  session_->reset(seq_);
}

std::span<const int32_t> DraftModel::resync(std::span<const int32_t> history) {
  ELM_CHECK(!history.empty(), "nothing to draft from");
  size_t keep = size_t(std::mismatch(fed_.begin(), fed_.end(), history.begin(), history.end()).first - fed_.begin());
  keep = std::min(keep, history.size() - 1);  // re-read at least one token: its logits are needed
  try {
    session_->truncate(seq_, int32_t(keep));
  } catch (const Error&) {
    // A recurrent draft without a snapshot that far back (the history was cut by more than a round
    // rolls back): start over.
    session_->reset(seq_);
    keep = 0;
  }
  fed_.resize(keep);
  const auto rest = history.subspan(keep);
  fed_.insert(fed_.end(), rest.begin(), rest.end());
  return rest;
}

std::span<const float> DraftModel::sync(std::span<const int32_t> history) { return session_->feed(seq_, resync(history)); }

void DraftModel::prefill(std::span<const int32_t> history) {
  if (int64_t(history.size()) <= session_->n_ctx()) sync(history);
}

void DraftModel::propose(std::span<const int32_t> history, int max_tokens, const Sampler& target_sampler, Draft& out) {
  out.clear();
  // The draft reads history and then all but its last proposal, one token per step, and later rolls
  // back at most those: no more than a sliding-window cache can undo (max_batch + 1 positions, see
  // kv_cache.h) or recurrent snapshots reach (one per step: the states after the last k - 1 tokens
  // and the one before them).
  max_tokens = int(std::min<int64_t>(max_tokens, session_->n_ctx() - int64_t(history.size()) + 1));
  const RuntimeConfig& c = session_->executor().config();
  max_tokens = std::min(max_tokens, c.max_batch + 1);
  for (const StateDecl& st : session_->model().graph.states)
    if (st.kind != "kv") max_tokens = std::min(max_tokens, c.recurrent_snapshots);
  if (max_tokens <= 0) return;
  if (target_sampler.config().picks_argmax()) {
    // Greedy targets accept exactly the drafts equal to their own argmax, so the draft is greedy too,
    // and its argmax is taken where its logits are (on the device, for GPU backends).
    int32_t tok = session_->feed_argmax(seq_, resync(history));
    for (int i = 0; i < max_tokens; ++i) {
      out.tokens.push_back(tok);
      out.q.emplace_back();
      if (i + 1 == max_tokens) break;
      const int32_t one[1] = {tok};
      tok = session_->feed_argmax(seq_, one);
      fed_.push_back(one[0]);
    }
    return;
  }
  std::span<const float> logits = sync(history);
  Sampler s = target_sampler;  // the target's config and penalty window; draws use rng_
  Distribution q;
  for (int i = 0; i < max_tokens; ++i) {
    s.distribution(logits, q);
    const int32_t tok = draw(q, rng_);
    s.accept(tok);
    out.tokens.push_back(tok);
    out.q.push_back(q);
    if (i + 1 == max_tokens) break;
    const int32_t one[1] = {tok};
    logits = session_->feed(seq_, one);
    fed_.push_back(tok);
  }
}

}  // namespace elm
