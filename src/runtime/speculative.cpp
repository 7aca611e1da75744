#include "runtime/speculative.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "runtime/token_emitter.h"

namespace elm {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
}  // namespace

int max_draft_tokens(const Model& target, const RuntimeConfig& c) {
  int k = c.max_batch - 1;
  for (const StateDecl& st : target.graph.states)
    if (st.kind != "kv") k = std::min(k, c.recurrent_snapshots - 1);
  return std::max(k, 0);
}

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
  reset_stats();
}

void Speculator::reset_stats() {
  stats_ = {};
  stats_.source = source_->name();
}

void Speculator::fed(std::span<const int32_t> tokens) { history_.insert(history_.end(), tokens.begin(), tokens.end()); }

void Speculator::fed_prompt(std::span<const int32_t> prompt) {
  fed(prompt);
  source_->prefill(history_);
}

void Speculator::truncated(int32_t n_past) {
  ELM_CHECK(n_past >= 0 && size_t(n_past) <= history_.size(), "speculative decoding: the sequence holds ", n_past,
            " tokens, ", history_.size(), " of which were fed through this speculator");
  history_.resize(size_t(n_past));
}

const std::vector<int32_t>& Speculator::draft(int32_t pending, int limit, const Sampler& sampler) {
  plan(pending, limit);
  Speculator* self[1] = {this};
  const Sampler* samplers[1] = {&sampler};
  draft_planned(self, samplers);
  return feed_;
}

int Speculator::plan(int32_t pending, int limit) {
  history_.push_back(pending);  // the target reads it this round
  planned_ = std::max(std::min(length_.next(), limit), 0);
  draft_.clear();
  feed_.assign(1, pending);
  return planned_;
}

void Speculator::draft_planned(std::span<Speculator* const> specs, std::span<const Sampler* const> samplers) {
  ELM_CHECK(specs.size() == samplers.size(), "one sampler per speculator");
  // Sources with the same batch key propose together; each member's round waited for the whole group,
  // so that is its drafting time (the cost its draft-length policy weighs).
  std::vector<bool> done(specs.size(), false);
  std::vector<DraftSource*> sources;
  std::vector<DraftRequest> requests;
  std::vector<Speculator*> group;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (done[i] || specs[i]->planned_ == 0) continue;
    const void* key = specs[i]->source_->batch_key();
    sources.clear(), requests.clear(), group.clear();
    for (size_t j = i; j < specs.size(); ++j) {
      Speculator& s = *specs[j];
      if (done[j] || s.planned_ == 0 || (j > i && (key == nullptr || s.source_->batch_key() != key))) continue;
      done[j] = true;
      sources.push_back(s.source_.get());
      requests.push_back({s.history_, s.planned_, samplers[j], &s.draft_});
      group.push_back(&s);
    }
    const auto t0 = Clock::now();
    sources[0]->propose_together(sources, requests);
    const double ms = ms_since(t0);
    for (Speculator* s : group) {
      ELM_CHECK(int(s->draft_.size()) <= s->planned_ && s->draft_.q.size() == s->draft_.size(), "draft source ",
                s->source_->name(), " returned a malformed draft");
      s->draft_ms_ = ms;
      s->feed_.insert(s->feed_.end(), s->draft_.tokens.begin(), s->draft_.tokens.end());
    }
  }
  const auto now = Clock::now();
  for (Speculator* s : specs) {
    if (s->planned_ == 0) s->draft_ms_ = 0;
    s->verify_start_ = now;
  }
}

const SpeculativeRound& Speculator::verify(std::span<const float> rows, Sampler& sampler) {
  const size_t n = feed_.size(), V = n ? rows.size() / n : 0;
  ELM_CHECK(n > 0 && V > 0 && rows.size() == n * V, "speculative verification needs one logits row per token read");
  // Row i is the target's distribution after d_i (row 0: after pending): it judges d_(i+1); row k gives
  // the bonus token when every draft is accepted.
  size_t n_acc = 0;
  int32_t next = -1;
  for (;; ++n_acc) {
    sampler.distribution(rows.subspan(n_acc * V, V), p_);
    if (n_acc == draft_.size()) {
      next = draw(p_, sampler.rng());
      break;
    }
    const Verdict v = accept_or_resample(p_, draft_.q[n_acc], draft_.tokens[n_acc], sampler.rng());
    if (!v.accepted) {
      next = v.token;
      break;
    }
    sampler.accept(v.token);  // the penalty window of the next position includes it
  }
  return finish_round(n_acc, next, sampler);
}

const SpeculativeRound& Speculator::verify_argmax(std::span<const int32_t> ids, Sampler& sampler) {
  ELM_CHECK(ids.size() == feed_.size(), "speculative verification needs one token per token read");
  size_t n_acc = 0;
  while (n_acc < draft_.size() && ids[n_acc] == draft_.tokens[n_acc]) sampler.accept(draft_.tokens[n_acc++]);
  return finish_round(n_acc, ids[n_acc], sampler);
}

const SpeculativeRound& Speculator::finish_round(size_t n_acc, int32_t next, Sampler& sampler) {
  const size_t n = feed_.size();
  sampler.accept(next);
  history_.insert(history_.end(), draft_.tokens.begin(), draft_.tokens.begin() + long(n_acc));
  round_.tokens.assign(draft_.tokens.begin(), draft_.tokens.begin() + long(n_acc));
  round_.tokens.push_back(next);
  round_.keep = int32_t(1 + n_acc);

  const double verify_ms = ms_since(verify_start_);
  length_.record(int(draft_.size()), int(n_acc), draft_ms_, int(n), verify_ms);
  ++stats_.rounds;
  stats_.drafted += int64_t(draft_.size());
  stats_.accepted += int64_t(n_acc);
  stats_.generated += int64_t(round_.tokens.size());
  stats_.draft_ms += draft_ms_;
  stats_.verify_ms += verify_ms;
  stats_.plain_step_ms = length_.plain_step_ms();
  return round_;
}

GenerateResult Speculator::generate(Session& s, int seq, const std::vector<int32_t>& prompt, const GenerateOptions& o,
                                    const std::function<bool(const std::string&)>& on_text) {
  ELM_CHECK(!prompt.empty(), "the prompt is empty");
  const size_t held = size_t(s.n_past(seq));
  truncated(int32_t(held));  // the sequence may have been rolled back since the last call

  GenerateResult r;
  r.n_prompt = int(prompt.size());
  Sampler sampler(o.sampling);
  for (int32_t t : prompt) sampler.accept(t);
  auto t0 = Clock::now();
  std::span<const float> logits = s.feed(seq, prompt);
  fed_prompt(prompt);
  r.prompt_ms = ms_since(t0);

  reset_stats();
  const int max_k = max_draft_tokens(s.model(), s.executor().config());
  TokenEmitter emit(s.model(), o, r, on_text);
  auto t1 = Clock::now();
  // The first token comes from the prompt's logits, as in generate().
  bool done = o.max_tokens == 0;
  if (done) r.reason = StopReason::Length;
  int32_t pending = done ? -1 : sampler.sample(logits);
  const bool argmax_only = o.sampling.picks_argmax();
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
    int limit = int(std::min<int64_t>(s.n_ctx() - s.n_past(seq) - 1, max_k));
    if (o.max_tokens >= 0) limit = std::min(limit, o.max_tokens - int(r.tokens.size()) - 1);
    const int32_t base = s.n_past(seq);
    const std::vector<int32_t>& feed = draft(pending, limit, sampler);
    const SpeculativeRound& round = argmax_only ? verify_argmax(s.feed_all_argmax(seq, feed), sampler)
                                                : verify(s.feed_all(seq, feed), sampler);
    s.truncate(seq, base + round.keep);
    for (size_t i = 0; i < round.tokens.size() && !done; ++i) done = !emit.push(round.tokens[i]);
    pending = round.tokens.back();
  }
  emit.finish();

  // Leave the sequence exactly as generate() would: every emitted token read except the last one when
  // generation ended on it (stop string, cancellation, full context).
  const bool last_unread = r.reason == StopReason::StopString || r.reason == StopReason::Cancelled ||
                           r.reason == StopReason::Context;
  const size_t want = held + prompt.size() + r.tokens.size() - (last_unread && !r.tokens.empty() ? 1 : 0);
  if (history_.size() > want) {
    s.truncate(seq, int32_t(want));
    truncated(int32_t(want));
  } else if (history_.size() < want) {
    const size_t gen_read = history_.size() - held - prompt.size();  // emitted tokens the target holds
    const std::vector<int32_t> rest(r.tokens.begin() + long(gen_read), r.tokens.begin() + long(want - held - prompt.size()));
    s.feed(seq, rest);
    fed(rest);
  }
  r.gen_ms = ms_since(t1);
  return r;
}

}  // namespace elm
