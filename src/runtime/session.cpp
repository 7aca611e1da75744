#include "runtime/session.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace elm {

Session::Session(std::shared_ptr<const Model> model, const SessionOptions& o)
    : model_(std::move(model)),
      executor_(std::make_unique<Executor>(model_, o.runtime, o.backends)),
      n_past_(size_t(o.runtime.max_seqs), 0) {}

void Session::check_room(int seq, size_t n) const {
  ELM_CHECK(seq >= 0 && size_t(seq) < n_past_.size(), "sequence ", seq, " is out of range");
  const int64_t need = int64_t(n_past_[size_t(seq)]) + int64_t(n);
  ELM_CHECK(need <= n_ctx(), "the input needs ", need, " positions but the context holds ", n_ctx(),
            " tokens (raise it with -c / --ctx, up to the model's ", model_->info.context_length, ")");
}

template <class Run>
void Session::feed_parts(std::span<const SeqTokens> parts, Run&& run) {
  for (size_t i = 0; i < parts.size(); ++i) {
    ELM_CHECK(!parts[i].tokens.empty(), "nothing to feed for sequence ", parts[i].seq);
    check_room(parts[i].seq, parts[i].tokens.size());
    for (size_t j = 0; j < i; ++j)
      ELM_CHECK(parts[j].seq != parts[i].seq, "sequence ", parts[i].seq, " appears twice in one step");
  }
  // Parts in order, split across steps only where a step is full: each part's logits row is its last
  // token's, so rows come out in the order of the parts.
  const int64_t step = executor_->config().max_batch;
  Batch b;
  for (size_t i = 0; i < parts.size(); ++i) {
    const SeqTokens& p = parts[i];
    for (size_t t = 0; t < p.tokens.size(); ++t) {
      b.add(p.tokens[t], n_past_[size_t(p.seq)]++, p.seq, t + 1 == p.tokens.size());
      if (b.size() == step) {
        run(b);
        b.clear();
      }
    }
  }
  if (b.size() > 0) run(b);
}

std::span<const float> Session::feed(int seq, std::span<const int32_t> tokens) {
  const SeqTokens part[1] = {{seq, tokens}};
  feed_parts(part, [&](const Batch& b) {
    const HostTensor& out = executor_->step(b);
    if (b.n_outputs()) last_.assign(out.data.begin(), out.data.end());  // the last step's
  });
  return last_;
}

int32_t Session::feed_argmax(int seq, std::span<const int32_t> tokens) {
  const SeqTokens part[1] = {{seq, tokens}};
  return feed_seqs_argmax(part).at(0);
}

std::vector<float> Session::feed_all(int seq, std::span<const int32_t> tokens) {
  check_room(seq, tokens.size());
  const int64_t step = executor_->config().max_batch;
  std::vector<float> all;
  Batch b;
  for (size_t i = 0; i < tokens.size(); i += size_t(step)) {
    const size_t end = std::min(tokens.size(), i + size_t(step));
    b.clear();
    for (size_t t = i; t < end; ++t) b.add(tokens[t], n_past_[size_t(seq)]++, seq, true);
    const HostTensor& out = executor_->step(b);
    // Rows as wide as the logits (a draft's narrowed output layer scores fewer ids than vocab()).
    ELM_CHECK(out.rows == int64_t(end - i), "feed_all: the step returned ", out.rows, " rows for ", end - i, " tokens");
    all.resize(tokens.size() * size_t(out.cols));
    std::memcpy(all.data() + i * size_t(out.cols), out.data.data(), out.data.size() * 4);
  }
  return all;
}

std::vector<int32_t> Session::feed_all_argmax(int seq, std::span<const int32_t> tokens) {
  check_room(seq, tokens.size());
  const int64_t step = executor_->config().max_batch;
  std::vector<int32_t> ids;
  Batch b;
  for (size_t i = 0; i < tokens.size(); i += size_t(step)) {
    const size_t end = std::min(tokens.size(), i + size_t(step));
    b.clear();
    for (size_t t = i; t < end; ++t) b.add(tokens[t], n_past_[size_t(seq)]++, seq, true);
    const std::vector<int32_t> part = executor_->step_argmax(b);
    ids.insert(ids.end(), part.begin(), part.end());
  }
  return ids;
}

std::vector<float> Session::feed_seqs(std::span<const SeqTokens> parts, int64_t* width) {
  std::vector<float> rows;
  int64_t cols = 0;
  feed_parts(parts, [&](const Batch& b) {
    const HostTensor& out = executor_->step(b);
    cols = out.cols;
    rows.insert(rows.end(), out.data.begin(), out.data.begin() + out.rows * out.cols);
  });
  if (width) *width = cols;
  return rows;
}

std::vector<int32_t> Session::feed_seqs_argmax(std::span<const SeqTokens> parts) {
  std::vector<int32_t> ids;
  feed_parts(parts, [&](const Batch& b) {
    if (b.n_outputs() == 0) {  // a long part's first tokens: nothing to take an argmax of
      executor_->step(b);
      return;
    }
    const std::vector<int32_t> part = executor_->step_argmax(b);
    ids.insert(ids.end(), part.begin(), part.end());
  });
  return ids;
}

void Session::reset(int seq) {
  executor_->seq_reset(seq);
  n_past_.at(size_t(seq)) = 0;
}

void Session::truncate(int seq, int32_t n) {
  ELM_CHECK(n >= 0 && n <= n_past_.at(size_t(seq)), "cannot truncate sequence ", seq, " to ", n);
  executor_->seq_truncate(seq, n);
  n_past_[size_t(seq)] = n;
}

}  // namespace elm
