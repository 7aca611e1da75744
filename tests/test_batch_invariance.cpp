// The CPU computes every row of a step of up to 16 tokens exactly as a one-token step would: the
// property greedy speculative decoding needs to reproduce plain decoding (a verification pass reads
// k + 1 tokens where plain decoding reads one). Checked bit for bit on float, int8 and int4 weights,
// with GQA and sliding windows (gemma3), two threads and a context long enough for split key ranges.
#include <gtest/gtest.h>

#include "batch_invariance.h"
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
      const size_t sizes[] = {3, 16, 1, 9, 2};
      expect_steps_equal_one_token_steps(m, o, 200, 40, sizes);
    }
  }
}
