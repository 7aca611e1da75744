// Runtime precision modes of the CPU backend on a transformers fixture: KV cache in F16 / INT8 and
// activations rounded to BF16 / F16 (RuntimeConfig::kv_dtype, act_dtype). Each mode must change the
// numbers (the rounding happens) and stay within the error its precision implies.
#include <gtest/gtest.h>

#include "fixture_check.h"
#include "quant/quantize.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

FixtureErrors errors_with(DType kv, DType act) {
  const std::string dir = shared("fixtures/tiny/llama");
  auto model = Model::load(dir);
  SessionOptions o;
  o.runtime.kv_dtype = kv;
  o.runtime.act_dtype = act;
  return fixture_errors(model, load_fixture_ref(dir), o);
}

}  // namespace

TEST(CpuModes, KvCacheTypes) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  const FixtureErrors f16 = errors_with(DType::F16, DType::F32), i8 = errors_with(DType::I8, DType::F32);
  RecordProperty("kv_f16_err", std::to_string(f16.stepwise));
  RecordProperty("kv_i8_err", std::to_string(i8.stepwise));
  // Prefill reads the cache too (the step's own keys), so both paths see the rounding.
  EXPECT_GT(f16.stepwise, 1e-7);
  EXPECT_LT(f16.stepwise, 2e-3);
  EXPECT_LT(f16.prefill, 2e-3);
  EXPECT_GT(i8.stepwise, f16.stepwise);
  EXPECT_LT(i8.stepwise, 3e-2);
}

TEST(CpuModes, ActivationTypes) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  const FixtureErrors f16 = errors_with(DType::F32, DType::F16), bf16 = errors_with(DType::F32, DType::BF16);
  RecordProperty("act_f16_err", std::to_string(f16.prefill));
  RecordProperty("act_bf16_err", std::to_string(bf16.prefill));
  EXPECT_GT(f16.prefill, 1e-6);
  EXPECT_LT(f16.prefill, 5e-3);
  EXPECT_GT(bf16.prefill, f16.prefill);  // 8 mantissa bits against 11
  EXPECT_LT(bf16.prefill, 5e-2);
  EXPECT_LT(bf16.stepwise, 5e-2);
}

TEST(CpuModes, AutoKvTypeIsF16UnlessEveryMatmulIsF32) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  auto model = Model::load(shared("fixtures/tiny/llama"));
  quantize_weights(*model, QuantPolicy::parse("f32"));
  EXPECT_EQ(model->auto_kv_dtype(), DType::F32);  // a float32 model is kept exact
  quantize_weights(*model, QuantPolicy::parse("int8"));
  EXPECT_EQ(model->auto_kv_dtype(), DType::F16);
}
