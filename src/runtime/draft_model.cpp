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

int DraftModel::cap(int max_tokens, size_t history) const {
  // The draft reads history and then all but its last proposal, one token per step, and later rolls
  // back at most those: no more than a sliding-window cache can undo (max_batch + 1 positions, see
  // kv_cache.h) or recurrent snapshots reach (one per step: the states after the last k - 1 tokens
  // and the one before them).
  max_tokens = int(std::min<int64_t>(max_tokens, session_->n_ctx() - int64_t(history) + 1));
  const RuntimeConfig& c = session_->executor().config();
  max_tokens = std::min(max_tokens, c.max_batch + 1);
  for (const StateDecl& st : session_->model().graph.states)
    if (st.kind != "kv") max_tokens = std::min(max_tokens, c.recurrent_snapshots);
  return std::max(max_tokens, 0);
}

void DraftModel::propose(std::span<const int32_t> history, int max_tokens, const Sampler& sampler, Draft& out) {
  DraftSource* self[1] = {this};
  const DraftRequest request[1] = {{history, max_tokens, &sampler, &out}};
  propose_together(self, request);
}

void DraftModel::propose_together(std::span<DraftSource* const> sources, std::span<const DraftRequest> requests) {
  ELM_CHECK(sources.size() == requests.size(), "one draft request per source");
  // One member per sequence still drafting; each pass reads `feed` of every member whose draft is not
  // complete (the first pass: what its sequence has not read yet, then its newest proposal).
  struct Member {
    DraftModel* model;
    const DraftRequest* request;
    int k;
    Sampler sampler;  // the target's config and penalty window; draws use the member's rng_
    std::span<const int32_t> feed;
    int32_t last = -1;
  };
  std::vector<Member> members;
  for (size_t i = 0; i < sources.size(); ++i) {
    DraftModel* m = static_cast<DraftModel*>(sources[i]);  // the same batch_key: a DraftModel on this session
    ELM_CHECK(m->session_ == session_, "draft models on different sessions cannot draft together");
    requests[i].out->clear();
    const int k = m->cap(requests[i].max_tokens, requests[i].history.size());
    if (k > 0) members.push_back({m, &requests[i], k, *requests[i].sampler, m->resync(requests[i].history)});
  }
  std::vector<SeqTokens> parts;
  Distribution q;
  for (int i = 0; !members.empty(); ++i) {
    parts.clear();
    for (Member& mb : members) {
      if (i > 0) {  // its previous proposal, read now
        mb.feed = std::span<const int32_t>(&mb.last, 1);
        mb.model->fed_.push_back(mb.last);
      }
      parts.push_back({mb.model->seq_, mb.feed});
    }
    // Greedy targets accept exactly the drafts equal to their own argmax, so their drafts are greedy
    // too, and when every member's are, the argmaxes are taken where the logits are (on the device,
    // for GPU backends).
    bool all_greedy = true;
    for (const Member& mb : members) all_greedy = all_greedy && mb.sampler.config().picks_argmax();
    std::vector<int32_t> ids;
    std::vector<float> rows;
    int64_t width = 0;
    if (all_greedy) ids = session_->feed_seqs_argmax(parts);
    else rows = session_->feed_seqs(parts, &width);
    for (size_t j = 0; j < members.size(); ++j) {
      Member& mb = members[j];
      Draft& out = *mb.request->out;
      const std::span<const float> logits =
          all_greedy ? std::span<const float>() : std::span<const float>(rows.data() + j * size_t(width), size_t(width));
      if (mb.sampler.config().picks_argmax()) {
        mb.last = all_greedy ? ids[j] : argmax(logits);
        out.q.emplace_back();
      } else {
        mb.sampler.distribution(logits, q);
        mb.last = draw(q, mb.model->rng_);
        mb.sampler.accept(mb.last);
        out.q.push_back(q);
      }
      out.tokens.push_back(mb.last);
    }
    // Members with all their tokens leave; the draft reads none of its last proposal.
    std::erase_if(members, [](const Member& mb) { return int(mb.request->out->size()) == mb.k; });
  }
}

}  // namespace elm
