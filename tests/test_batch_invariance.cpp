// The CPU computes every row of a step of up to 16 tokens exactly as a one-token step would: the
// property greedy speculative decoding needs to reproduce plain decoding (a verification pass reads
// k + 1 tokens where plain decoding reads one). Checked bit for bit on float, int8 and int4 weights,
// with GQA and sliding windows (gemma3), two threads and a context long enough for split key ranges.
#include <gtest/gtest.h>

#include "batch_invariance.h"
#include "runtime/session.h"

using namespace elm;
using namespace elm::test;

TEST(CpuBatchInvariance, StepsOfUpTo16TokensEqualOneTokenSteps) {
  SessionOptions o;
  o.runtime.n_ctx = 512, o.runtime.max_batch = 64, o.runtime.threads = 2;
  const size_t sizes[] = {3, 16, 1, 9, 2};
  expect_fixtures_steps_equal_one_token_steps(o, 200, 40, sizes);
}
