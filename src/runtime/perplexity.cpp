#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace elm {

int32_t chunk_bos(const Model& m) {
  if (!m.tokenizer) return -1;
  const std::vector<int32_t> with = m.tokenizer->encode("a", true), without = m.tokenizer->encode("a", false);
  return with.size() > without.size() && !with.empty() && with[0] == m.info.bos_token_id ? m.info.bos_token_id : -1;
}

namespace {

// Running mean and standard error of the mean (Welford).
struct Running {
  int64_t n = 0;
  double mean = 0, m2 = 0;
  void add(double x) {
    ++n;
    const double d = x - mean;
    mean += d / double(n);
    m2 += d * (x - mean);
  }
  double sem() const { return n > 1 ? std::sqrt(m2 / double(n - 1) / double(n)) : 0; }
};

// log-softmax of one row of logits, in double.
void log_softmax(const float* logits, int64_t V, std::vector<double>& out) {
  out.resize(size_t(V));
  double mx = -INFINITY;
  for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(logits[v]));
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(double(logits[v]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t v = 0; v < V; ++v) out[size_t(v)] = double(logits[v]) - lse;
}

int64_t argmax(const std::vector<double>& x) { return std::max_element(x.begin(), x.end()) - x.begin(); }

}  // namespace

PerplexityResult perplexity(Session& s, const std::vector<int32_t>& tokens, const PerplexityOptions& o, Session* base,
                            const std::function<void(int, const PerplexityResult&)>& on_chunk) {
  ELM_CHECK(o.ctx >= 4, "perplexity: the context must be at least 4 tokens, not ", o.ctx);
  ELM_CHECK(o.ctx <= s.n_ctx(), "perplexity: a context of ", o.ctx, " tokens is more than the session's ", s.n_ctx());
  const int64_t V = s.vocab();
  if (base) {
    ELM_CHECK(base->vocab() == V, "perplexity: the base model's vocabulary (", base->vocab(),
              ") differs from the model's (", V, ")");
    ELM_CHECK(o.ctx <= base->n_ctx(), "perplexity: a context of ", o.ctx, " tokens is more than the base session's ",
              base->n_ctx());
  }
  int chunks = int(tokens.size() / size_t(o.ctx));
  ELM_CHECK(chunks > 0, "perplexity: the text has ", tokens.size(), " tokens, fewer than one chunk of ", o.ctx);
  if (o.chunks >= 0) chunks = std::min(chunks, o.chunks);

  PerplexityResult r;
  r.has_base = base != nullptr;
  Running nll, nll_base, kld;
  int64_t agree = 0;
  std::vector<double> lq, lp;
  const int first = o.ctx / 2;
  for (int c = 0; c < chunks; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + int64_t(c) * o.ctx, tokens.begin() + int64_t(c + 1) * o.ctx);
    if (o.bos >= 0) chunk[0] = o.bos;
    s.reset(0);
    const std::vector<float> logits = s.feed_all(0, chunk);  // [ctx, V]
    std::vector<float> base_logits;
    if (base) {
      base->reset(0);
      base_logits = base->feed_all(0, chunk);
    }
    for (int j = first; j < o.ctx - 1; ++j) {
      const int32_t next = chunk[size_t(j + 1)];
      ELM_CHECK(next >= 0 && next < V, "perplexity: token id ", next, " is outside the vocabulary");
      log_softmax(logits.data() + int64_t(j) * V, V, lq);
      nll.add(-lq[size_t(next)]);
      if (!base) continue;
      log_softmax(base_logits.data() + int64_t(j) * V, V, lp);
      nll_base.add(-lp[size_t(next)]);
      double kl = 0;
      for (int64_t v = 0; v < V; ++v) kl += std::exp(lp[size_t(v)]) * (lp[size_t(v)] - lq[size_t(v)]);
      kl = std::max(kl, 0.0);  // rounding can leave -1e-17 for identical rows
      kld.add(kl);
      r.kld_max = std::max(r.kld_max, kl);
      agree += argmax(lp) == argmax(lq);
    }
    r.chunks = c + 1;
    r.tokens_scored = nll.n;
    r.nll_mean = nll.mean, r.nll_sem = nll.sem();
    r.ppl = std::exp(nll.mean), r.ppl_err = r.ppl * nll.sem();
    if (base) {
      r.ppl_base = std::exp(nll_base.mean), r.ppl_base_err = r.ppl_base * nll_base.sem();
      r.kld_mean = kld.mean, r.kld_sem = kld.sem();
      r.top1_agree = double(agree) / double(kld.n);
    }
    if (on_chunk) on_chunk(c, r);
  }
  return r;
}

}  // namespace elm
