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

std::span<const float> Session::feed(int seq, std::span<const int32_t> tokens) {
  ELM_CHECK(!tokens.empty(), "nothing to feed");
  check_room(seq, tokens.size());
  const int64_t step = executor_->config().max_batch;
  Batch b;
  for (size_t i = 0; i < tokens.size(); i += size_t(step)) {
    const size_t end = std::min(tokens.size(), i + size_t(step));
    b.clear();
    for (size_t t = i; t < end; ++t) b.add(tokens[t], n_past_[size_t(seq)]++, seq, t + 1 == tokens.size());
    const HostTensor& out = executor_->step(b);
    if (end == tokens.size()) last_.assign(out.data.begin(), out.data.end());
  }
  return last_;
}

int32_t Session::feed_argmax(int seq, std::span<const int32_t> tokens) {
  ELM_CHECK(!tokens.empty(), "nothing to feed");
  check_room(seq, tokens.size());
  const int64_t step = executor_->config().max_batch;
  Batch b;
  int32_t next = -1;
  for (size_t i = 0; i < tokens.size(); i += size_t(step)) {
    const size_t end = std::min(tokens.size(), i + size_t(step));
    b.clear();
    for (size_t t = i; t < end; ++t) b.add(tokens[t], n_past_[size_t(seq)]++, seq, t + 1 == tokens.size());
    if (end == tokens.size()) next = executor_->step_argmax(b).at(0);
    else executor_->step(b);
  }
  return next;
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
