// Speculative sampling keeps the target's distribution exactly. Chi-square tests (p = 1e-4, fixed
// seeds, so the outcome is deterministic) of
// - the acceptance rule alone, on synthetic p and q (overlapping, disjoint supports, point masses as
//   prompt lookup produces), against p; plus the acceptance rate against sum(min(p, q)), and a negative
//   control showing the test rejects the draft's own distribution;
// - whole speculative generations with a real draft model, under two sampler configs (plain
//   temperature; temperature + top-k + top-p + min-p + repetition penalty): the second token (the first
//   one the acceptance rule decides) against its exact marginal sum_t1 p(t1) p(t2 | t1), computed
//   from the target alone with Sampler::distribution.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numeric>

#include "runtime/draft_model.h"
#include "runtime/speculative.h"
#include "runtime/speculative_accept.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

// Pearson's statistic of observed counts against expected probabilities. Cells expected below 5
// are pooled into one; a count on a zero-probability token is reported through `impossible`.
struct ChiSquare {
  double stat = 0;
  int df = 0;
  int64_t impossible = 0;
  // Upper 1e-4 quantile of chi-square with df degrees of freedom (Wilson-Hilferty).
  double critical() const {
    const double z = 3.719, d = df, c = 2.0 / (9.0 * d);
    return d * std::pow(1 - c + z * std::sqrt(c), 3);
  }
  bool passes() const { return impossible == 0 && stat < critical(); }
};

ChiSquare chi_square(const std::map<int32_t, int64_t>& counts, const std::map<int32_t, double>& probs) {
  int64_t n = 0;
  for (const auto& [t, c] : counts) n += c;
  ChiSquare r;
  double pool_expected = 0, pool_observed = 0;
  int cells = 0;
  for (const auto& [t, p] : probs) {
    const auto it = counts.find(t);
    const double observed = it == counts.end() ? 0 : double(it->second), expected = p * double(n);
    if (expected < 5) {
      pool_expected += expected, pool_observed += observed;
      continue;
    }
    r.stat += (observed - expected) * (observed - expected) / expected;
    ++cells;
  }
  if (pool_expected > 0) {
    r.stat += (pool_observed - pool_expected) * (pool_observed - pool_expected) / pool_expected;
    ++cells;
  }
  for (const auto& [t, c] : counts)
    if (!probs.count(t) || probs.at(t) == 0) r.impossible += c;
  r.df = std::max(1, cells - 1);
  return r;
}

std::map<int32_t, double> as_map(const Distribution& d) {
  std::map<int32_t, double> m;
  for (const auto& [t, p] : d) m[t] += p;
  return m;
}

Distribution normalized(std::vector<std::pair<int32_t, float>> w) {
  double z = 0;
  for (const auto& e : w) z += e.second;
  for (auto& e : w) e.second = float(e.second / z);
  return w;
}

}  // namespace

TEST(SpeculativeAcceptance, OutputFollowsTheTargetDistribution) {
  struct Case {
    const char* name;
    Distribution p, q;  // q empty: point mass on `point`
    int32_t point = -1;
  };
  const Distribution p6 = normalized({{0, 5}, {1, 1}, {2, 3}, {3, 0.5f}, {4, 2}, {5, 0.2f}});
  const std::vector<Case> cases = {
      {"overlapping", p6, normalized({{0, 1}, {1, 4}, {2, 1}, {3, 3}, {4, 0.3f}, {5, 2}})},
      {"q beyond p's support", normalized({{0, 2}, {1, 1}, {2, 4}, {3, 1}}),
       normalized({{2, 1}, {3, 2}, {4, 3}, {5, 1}, {6, 2}, {7, 1}})},
      {"point mass (lookup)", p6, {}, 1},
      {"point mass outside p", normalized({{0, 2}, {1, 1}, {2, 4}}), {}, 5},
      {"q equals p", p6, p6},
  };
  const int n = 100000;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::mt19937_64 draft_rng(11), target_rng(22);
    std::map<int32_t, int64_t> out, drafted;
    int64_t accepted = 0;
    for (int i = 0; i < n; ++i) {
      const int32_t x = c.q.empty() ? c.point : draw(c.q, draft_rng);
      const Verdict v = accept_or_resample(c.p, c.q, x, target_rng);
      ++out[v.token];
      ++drafted[x];
      accepted += v.accepted;
      if (v.accepted) {
        ASSERT_EQ(v.token, x);
      }
    }
    const ChiSquare cs = chi_square(out, as_map(c.p));
    EXPECT_TRUE(cs.passes()) << "chi2 " << cs.stat << " (df " << cs.df << ", critical " << cs.critical()
                             << "), impossible tokens " << cs.impossible;
    // P(accept) = sum_x min(p(x), q(x)).
    const auto pm = as_map(c.p);
    const auto qm = c.q.empty() ? std::map<int32_t, double>{{c.point, 1.0}} : as_map(c.q);
    double overlap = 0;
    for (const auto& [t, qx] : qm) overlap += std::min(qx, pm.count(t) ? pm.at(t) : 0.0);
    overlap = std::min(overlap, 1.0);
    const double sd = std::sqrt(overlap * (1 - overlap) / n);
    EXPECT_NEAR(double(accepted) / n, overlap, 5 * sd + 1e-12);
    // Negative control: the draft's own tokens fail the same test whenever q differs from p.
    if (std::string(c.name) != "q equals p") {
      EXPECT_FALSE(chi_square(drafted, pm).passes());
    }
  }
}

TEST(SpeculativeSampling, SecondTokenHasTheTargetsMarginal) {
  // Random-weight fixtures with the same 512-token vocabulary: llama as the target, mistral drafting.
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  ELM_REQUIRE_SHARED("fixtures/tiny/mistral");
  auto target = Model::load(shared("fixtures/tiny/llama"));
  auto draft_model = Model::load(shared("fixtures/tiny/mistral"));
  const std::vector<int32_t> prompt = {1, 57, 300, 12, 57, 401, 88, 9};
  SamplerConfig plain;
  plain.temperature = 1.0f, plain.top_k = 0, plain.top_p = 1.0f, plain.min_p = 0;
  SamplerConfig filtered;
  filtered.temperature = 0.7f, filtered.top_k = 24, filtered.top_p = 0.9f, filtered.min_p = 0.05f;
  filtered.repeat_penalty = 1.3f;

  SessionOptions so;
  so.runtime.n_ctx = 64;
  so.runtime.max_batch = 8;
  so.runtime.threads = 1;  // a model this small gains nothing from a second thread
  for (const SamplerConfig& config : {plain, filtered}) {
    SCOPED_TRACE(config.top_k ? "filtered" : "plain");
    // The sequence holds all but the prompt's last token once; every sample generates from there with
    // that token as its prompt (which is then also the whole penalty window, as in generate()).
    Session s(target, so);
    auto draft_session = std::make_shared<Session>(draft_model, so);
    Speculator spec(std::make_unique<DraftModel>(draft_session, 0, *target, 99), {1, /*adaptive=*/false});
    GenerateOptions g;
    g.max_tokens = 0;
    spec.generate(s, 0, std::vector<int32_t>(prompt.begin(), prompt.end() - 1), g);
    const int32_t held = s.n_past(0);
    const std::vector<int32_t> last = {prompt.back()};

    // Exact marginal of the second token: sum over t1 of p(t1) p(t2 | t1), both from the target's
    // logits through Sampler::distribution.
    Sampler base(config);
    base.accept(last[0]);
    Distribution p1, p2;
    base.distribution(s.feed(0, last), p1);
    std::map<int32_t, double> marginal;
    for (const auto& [t1, pr1] : p1) {
      Sampler after = base;
      after.accept(t1);
      after.distribution(s.feed(0, std::span<const int32_t>(&t1, 1)), p2);
      s.truncate(0, held + 1);
      for (const auto& [t2, pr2] : p2) marginal[t2] += double(pr1) * pr2;
    }

    g.max_tokens = 3;  // the first token, then a round with one draft token and the target's own
    g.stop_at_eos = false;
    g.sampling = config;
    std::map<int32_t, int64_t> second;
    int64_t drafted = 0, accepted = 0;
    const int n = 2000;
    for (int i = 0; i < n; ++i) {
      s.truncate(0, held);
      g.sampling.seed = uint64_t(i);
      const GenerateResult r = spec.generate(s, 0, last, g);
      ASSERT_EQ(r.tokens.size(), 3u);
      ++second[r.tokens[1]];
      drafted += spec.stats().drafted;
      accepted += spec.stats().accepted;
    }
    const ChiSquare cs = chi_square(second, marginal);
    EXPECT_TRUE(cs.passes()) << "chi2 " << cs.stat << " (df " << cs.df << ", critical " << cs.critical()
                             << "), impossible tokens " << cs.impossible;
    // Both paths of the rule ran: acceptances and resampling after rejections.
    EXPECT_GT(accepted, 0);
    EXPECT_LT(accepted, drafted);
    RecordProperty(config.top_k ? "acceptance_filtered" : "acceptance_plain", std::to_string(double(accepted) / drafted));
  }
}
