// The CPU computes every row of a step of up to 16 tokens exactly as a one-token step would: the
// property greedy speculative decoding needs to reproduce plain decoding (a verification pass reads
// k + 1 tokens where plain decoding reads one). Checked bit for bit on float, int8 and int4 weights,
// with GQA and sliding windows (gemma3), two threads and a context long enough for split key ranges.
#include <gtest/gtest.h>

#include "quant/quantize.h"
#include "runtime/session.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

TEST(CpuBatchInvariance, StepsOfUpTo16TokensEqualOneTokenSteps) {
  for (const char* fixture : {"llama", "gemma3"}) {
    const std::string rel = std::string("fixtures/tiny/") + fixture;
    ELM_REQUIRE_SHARED(rel);
    for (const char* quant : {"keep", "int8", "int4-g32"}) {
      SCOPED_TRACE(rel + " " + quant);
      std::shared_ptr<Model> m = Model::load(shared(rel));
      if (std::string(quant) != "keep") quantize_weights(*m, QuantPolicy::parse(quant));
      SessionOptions o;
      o.runtime.n_ctx = 512, o.runtime.max_batch = 64, o.runtime.threads = 2;
      const int64_t V = m->graph.nodes[size_t(m->graph.output)].cols;
      std::vector<int32_t> ids;
      for (int i = 0; i < 200; ++i) ids.push_back(int32_t((i * 7919 + 13) % V));
      const std::span<const int32_t> prompt(ids.data(), 40);
      Session one(m, o), many(m, o);
      one.feed(0, prompt), many.feed(0, prompt);
      std::vector<float> want, got;
      for (size_t i = 40; i < ids.size(); ++i) {
        const std::vector<float> r = one.feed_all(0, std::span<const int32_t>(&ids[i], 1));
        want.insert(want.end(), r.begin(), r.end());
      }
      const size_t sizes[] = {3, 16, 1, 9, 2};
      for (size_t i = 40, k = 0; i < ids.size(); ++k) {
        const size_t n = std::min(sizes[k % 5], ids.size() - i);
        const std::vector<float> r = many.feed_all(0, std::span<const int32_t>(&ids[i], n));
        got.insert(got.end(), r.begin(), r.end());
        i += n;
      }
      ASSERT_EQ(got.size(), want.size());
      size_t first = got.size();
      for (size_t i = 0; i < got.size() && first == got.size(); ++i)
        if (got[i] != want[i]) first = i;
      EXPECT_EQ(first, got.size()) << "first difference in row " << first / size_t(V) << ": " << got[first] << " vs "
                                   << want[first];
    }
  }
}
