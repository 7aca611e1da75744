// Sampler against direct computations of each filter (written here in double precision).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "runtime/sampler.h"

using namespace elm;

namespace {
std::vector<float> logits_fixture() { return {1.0f, 3.0f, 2.5f, -1.0f, 3.0f, 0.5f, 2.9f, -4.0f}; }

// softmax(l / t) in double, as (id, p) sorted by p descending (ties by id).
std::vector<std::pair<int, double>> softmax_sorted(const std::vector<float>& l, double t) {
  std::vector<std::pair<int, double>> p;
  double mx = *std::max_element(l.begin(), l.end()), z = 0;
  for (size_t i = 0; i < l.size(); ++i) z += std::exp((l[i] - mx) / t);
  for (size_t i = 0; i < l.size(); ++i) p.emplace_back(int(i), std::exp((l[i] - mx) / t) / z);
  std::stable_sort(p.begin(), p.end(), [](auto& a, auto& b) { return a.second > b.second; });
  return p;
}
}  // namespace

TEST(Sampler, GreedyPicksFirstMaximum) {
  SamplerConfig c;
  c.temperature = 0;
  Sampler s(c);
  EXPECT_EQ(s.sample(logits_fixture()), 1);  // ids 1 and 4 tie: lowest id
}

// argmax against std::max_element (the first maximum) on lengths around its 8-lane blocking, with
// ties planted across lanes and in the tail, values drawn from a few levels so ties are common.
TEST(Sampler, ArgmaxIsTheFirstMaximum) {
  std::mt19937 rng(11);
  for (size_t n : {size_t(1), size_t(7), size_t(15), size_t(16), size_t(17), size_t(63), size_t(100), size_t(49152)}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> x(n);
      for (float& v : x) v = float(int(rng() % 7)) - 3.f;
      if (trial % 2) x[rng() % n] = 9.f, x[n - 1] = 9.f;  // a tie with the last element
      const auto want = std::max_element(x.begin(), x.end()) - x.begin();
      ASSERT_EQ(argmax(x), int32_t(want)) << "n " << n << " trial " << trial;
    }
  }
}

TEST(Sampler, TopKOneIsGreedyAtAnyTemperature) {
  SamplerConfig c;
  c.temperature = 5, c.top_k = 1, c.top_p = 1, c.min_p = 0;
  Sampler s(c);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(logits_fixture()), 1);
}

TEST(Sampler, DistributionMatchesFiltersComputedDirectly) {
  const std::vector<float> l = logits_fixture();
  for (float t : {0.5f, 1.0f, 2.0f})
    for (int k : {0, 3})
      for (float top_p : {1.0f, 0.8f})
        for (float min_p : {0.0f, 0.2f}) {
          SamplerConfig c;
          c.temperature = t, c.top_k = k, c.top_p = top_p, c.min_p = min_p;
          Sampler s(c);
          std::vector<std::pair<int32_t, float>> got;
          s.distribution(l, got);
          // Reference: keep top-k logits, softmax at t, cut cumulative >= top_p, drop p < min_p * p_max.
          auto p = softmax_sorted(l, t);
          if (k) {
            p.resize(size_t(k));
            double z = 0;
            for (auto& e : p) z += e.second;
            for (auto& e : p) e.second /= z;
          }
          size_t keep = p.size();
          double cum = 0;
          if (top_p < 1)
            for (size_t i = 0; i < p.size(); ++i)
              if ((cum += p[i].second) >= top_p) {
                keep = i + 1;
                break;
              }
          size_t kk = 1;
          while (kk < keep && p[kk].second >= min_p * p[0].second) ++kk;
          keep = kk;
          double z = 0;
          for (size_t i = 0; i < keep; ++i) z += p[i].second;
          ASSERT_EQ(got.size(), keep) << "t " << t << " k " << k << " p " << top_p << " min_p " << min_p;
          // The pairs come in no particular order (sorted only when a cut needs it).
          std::map<int32_t, float> got_p(got.begin(), got.end());
          ASSERT_EQ(got_p.size(), keep);
          for (size_t i = 0; i < keep; ++i) {
            ASSERT_TRUE(got_p.count(p[i].first)) << "token " << p[i].first;
            EXPECT_NEAR(got_p[p[i].first], p[i].second / z, 1e-6);
          }
        }
}

TEST(Sampler, DrawFrequenciesFollowTheDistribution) {
  SamplerConfig c;
  c.temperature = 1, c.top_k = 0, c.top_p = 1, c.min_p = 0, c.seed = 42;
  Sampler s(c);
  const std::vector<float> l = logits_fixture();
  std::vector<std::pair<int32_t, float>> d;
  s.distribution(l, d);
  std::map<int, int> counts;
  const int n = 200000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(l)];
  for (auto [id, p] : d) {
    const double sd = std::sqrt(p * (1 - p) / n);
    EXPECT_NEAR(counts[id] / double(n), p, 5 * sd + 1e-9) << "token " << id;
  }
}

TEST(Sampler, SameSeedSameTokens) {
  SamplerConfig c;
  c.temperature = 1.5, c.seed = 7;
  Sampler a(c), b(c);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.sample(logits_fixture()), b.sample(logits_fixture()));
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplerConfig c;
  c.temperature = 1, c.top_k = 0, c.top_p = 1, c.min_p = 0, c.repeat_penalty = 2.0f;
  Sampler s(c);
  s.accept(1);  // logit 3.0 -> 1.5
  s.accept(3);  // logit -1.0 -> -2.0
  std::vector<float> l = logits_fixture();
  std::vector<std::pair<int32_t, float>> got;
  s.distribution(l, got);
  std::vector<float> penalized = l;
  penalized[1] = 1.5f, penalized[3] = -2.0f;
  auto p = softmax_sorted(penalized, 1.0);
  ASSERT_EQ(got.size(), p.size());
  std::map<int32_t, float> got_p(got.begin(), got.end());
  for (size_t i = 0; i < p.size(); ++i) {
    ASSERT_TRUE(got_p.count(p[i].first)) << "token " << p[i].first;
    EXPECT_NEAR(got_p[p[i].first], p[i].second, 1e-6);
  }
}
