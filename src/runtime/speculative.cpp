#include "runtime/speculative.h"

#include <chrono>

#include "core/error.h"
#include "runtime/token_emitter.h"

namespace elm {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
}  // namespace

double SpeculativeStats::est_speedup() const {
  const double spent = draft_ms + verify_ms;
  return spent > 0 && plain_step_ms > 0 ? double(generated) * plain_step_ms / spent : 0;
}

nlohmann::json SpeculativeStats::to_json() const {
  return {{"source", source},
          {"rounds", rounds},
          {"drafted", drafted},
          {"accepted", accepted},
          {"acceptance_rate", acceptance_rate()},
          {"tokens_per_pass", tokens_per_pass()},
          {"draft_ms", draft_ms},
          {"verify_ms", verify_ms},
          {"est_speedup", est_speedup()}};
}

Speculator::Speculator(std::unique_ptr<DraftSource> source, SpeculativeOptions o)
    : source_(std::move(source)), options_(o), length_(o.draft_max, o.adaptive) {
  ELM_CHECK(source_, "speculative decoding needs a draft source");
}

GenerateResult Speculator::generate(Session& s, int seq, const std::vector<int32_t>& prompt, const GenerateOptions& o,
                                    const std::function<bool(const std::string&)>& on_text) {
  ELM_CHECK(!prompt.empty(), "the prompt is empty");
  const size_t held = size_t(s.n_past(seq));
  ELM_CHECK(held <= history_.size(), "speculative decoding: sequence ", seq, " holds ", held,
            " tokens that were not fed through this speculator");
  history_.resize(held);  // the sequence may have been truncated since

  GenerateResult r;
  r.n_prompt = int(prompt.size());
  Sampler sampler(o.sampling);
  for (int32_t t : prompt) sampler.accept(t);
  auto t0 = Clock::now();
  std::span<const float> logits = s.feed(seq, prompt);
  history_.insert(history_.end(), prompt.begin(), prompt.end());
  source_->prefill(history_);
  r.prompt_ms = ms_since(t0);

  stats_ = {};
  stats_.source = source_->name();
  TokenEmitter emit(s.model(), o, r, on_text);
  auto t1 = Clock::now();
  const size_t V = size_t(s.vocab());
  Distribution p;
  Draft draft;
  std::vector<int32_t> batch;
  // The first token comes from the prompt's logits, as in generate(). `pending` is the newest token:
  // emitted, not yet read by the target.
  bool done = o.max_tokens == 0;
  if (done) r.reason = StopReason::Length;
  int32_t pending = done ? -1 : sampler.sample(logits);
  done = done || !emit.push(pending);
  while (!done) {
    // The same checks, in the same order, as generate() makes between two tokens.
    if (s.n_past(seq) >= s.n_ctx()) {
      r.reason = StopReason::Context;
      break;
    }
    if (o.max_tokens >= 0 && int(r.tokens.size()) >= o.max_tokens) {
      r.reason = StopReason::Length;
      break;
    }
    // Draft no more than the context holds, than one step can verify (which also keeps rollbacks
    // within what sliding-window caches can undo), and than the token limit can use (the round adds
    // one more).
    int k = length_.next();
    k = int(std::min<int64_t>(k, s.n_ctx() - s.n_past(seq) - 1));
    k = std::min(k, s.executor().config().max_batch - 1);
    if (o.max_tokens >= 0) k = std::min(k, o.max_tokens - int(r.tokens.size()) - 1);

    history_.push_back(pending);  // the target reads it this round
    auto td = Clock::now();
    draft.clear();
    if (k > 0) source_->propose(history_, k, sampler, draft);
    ELM_CHECK(int(draft.size()) <= k && draft.q.size() == draft.size(), "draft source ", source_->name(),
              " returned a malformed draft");
    const double draft_ms = ms_since(td);

    // One target pass over [pending, d1..dk]: row i holds the distribution after d_i (row 0: after
    // pending), so row i judges d_(i+1) and row k gives the bonus token when all are accepted.
    auto tv = Clock::now();
    const int32_t base = s.n_past(seq);
    batch.assign(1, pending);
    batch.insert(batch.end(), draft.tokens.begin(), draft.tokens.end());
    const std::vector<float> rows = s.feed_all(seq, batch);
    size_t n_acc = 0;
    int32_t next = -1;
    for (;; ++n_acc) {
      sampler.distribution(std::span<const float>(rows.data() + n_acc * V, V), p);
      if (n_acc == draft.size()) {
        next = draw(p, sampler.rng());
        break;
      }
      const Verdict v = accept_or_resample(p, draft.q[n_acc], draft.tokens[n_acc], sampler.rng());
      if (!v.accepted) {
        next = v.token;
        break;
      }
      sampler.accept(v.token);  // the penalty window of the next position includes it
    }
    sampler.accept(next);
    // The target keeps pending and the accepted run; the draft resynchronizes on the next proposal.
    s.truncate(seq, base + 1 + int32_t(n_acc));
    history_.insert(history_.end(), draft.tokens.begin(), draft.tokens.begin() + long(n_acc));
    const double verify_ms = ms_since(tv);

    length_.record(int(draft.size()), int(n_acc), draft_ms, int(batch.size()), verify_ms);
    ++stats_.rounds;
    stats_.drafted += int64_t(draft.size());
    stats_.accepted += int64_t(n_acc);
    stats_.generated += int64_t(n_acc) + 1;
    stats_.draft_ms += draft_ms;
    stats_.verify_ms += verify_ms;

    for (size_t i = 0; i < n_acc && !done; ++i) done = !emit.push(draft.tokens[i]);
    done = done || !emit.push(next);
    pending = next;
  }
  emit.finish();

  // Leave the sequence exactly as generate() would: every emitted token read except the last one when
  // generation ended on it (stop string, cancellation, full context).
  const bool last_unread = r.reason == StopReason::StopString || r.reason == StopReason::Cancelled ||
                           r.reason == StopReason::Context;
  const size_t want = held + prompt.size() + r.tokens.size() - (last_unread && !r.tokens.empty() ? 1 : 0);
  if (history_.size() > want) {
    s.truncate(seq, int32_t(want));
    history_.resize(want);
  } else if (history_.size() < want) {
    const size_t gen_read = history_.size() - held - prompt.size();  // emitted tokens the target holds
    const std::vector<int32_t> rest(r.tokens.begin() + long(gen_read), r.tokens.begin() + long(want - held - prompt.size()));
    s.feed(seq, rest);
    history_.insert(history_.end(), rest.begin(), rest.end());
  }
  r.gen_ms = ms_since(t1);
  stats_.plain_step_ms = length_.plain_step_ms();
  return r;
}

}  // namespace elm
