// The CPU backend's fused gated feed-forward (matmul_glu: gate and up products, the activation and
// the product a few columns at a time) gives the same logits, bit for bit, as running the four ops
// one by one, for every packed weight type, activation function and activation type.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "elm_test_util.h"
#include "quant/quantize.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

// Logits of a prefill of 8 tokens, then of three single-token steps.
std::vector<float> logits(const std::shared_ptr<const Model>& m, bool fuse, DType act) {
  SessionOptions o;
  o.runtime.cpu_fuse = fuse;
  o.runtime.act_dtype = act;
  return model_logits(m, {1, 5, 9, 200, 3, 77, 41, 8, 13, 99, 250}, 8, o);
}

}  // namespace

TEST(CpuFusion, GatedFeedForwardEqualsTheOpsOneByOne) {
  // llama: SiLU gate; gemma3: tanh-approximated GELU gate.
  for (const char* arch : {"fixtures/tiny/llama", "fixtures/tiny/gemma3"}) {
    ELM_REQUIRE_SHARED(arch);
    for (const char* quant : {"int8", "int4", "int4m-g64"}) {
      auto m = Model::load(shared(arch));
      quantize_weights(*m, QuantPolicy::parse(quant));
      for (DType act : {DType::F32, DType::BF16}) {
        SCOPED_TRACE(std::string(arch) + " " + quant + " " + std::string(dtype_name(act)));
        const std::vector<float> fused = logits(m, true, act), plain = logits(m, false, act);
        ASSERT_EQ(fused.size(), plain.size());
        EXPECT_EQ(fused, plain);
        // Not a vacuous comparison: the logits are finite and not all equal.
        EXPECT_TRUE(std::all_of(fused.begin(), fused.end(), [](float v) { return std::isfinite(v); }));
        EXPECT_NE(*std::max_element(fused.begin(), fused.end()), *std::min_element(fused.begin(), fused.end()));
      }
    }
  }
}
