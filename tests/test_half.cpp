// Scalar half / bfloat16 conversions against the hardware's (F16C) or the compiler's conversions and exact bit rules.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/half.h"

using namespace elm;

// The reference conversions: the hardware's on x86-64 (F16C, every AVX2-class CPU), the compiler's
// __fp16 on aarch64 (GCC 12 has no _Float16 in C++ there).
namespace {
#if defined(__x86_64__)
__attribute__((target("f16c"))) float ref_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) uint16_t ref_f32_to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
#else
float ref_f16_to_f32(uint16_t h) {
  __fp16 v;
  std::memcpy(&v, &h, 2);
  return float(v);
}
uint16_t ref_f32_to_f16(float f) {
  const __fp16 v = __fp16(f);
  uint16_t h;
  std::memcpy(&h, &v, 2);
  return h;
}
#endif
}  // namespace

TEST(Half, F16ToF32MatchesHardwareForAllBitPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float ref = ref_f16_to_f32(uint16_t(h)), got = f16_to_f32(uint16_t(h));
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      EXPECT_EQ(got, ref) << "bits " << h;
    }
  }
}

TEST(Half, F32ToF16RoundsLikeHardware) {
  // Every f16 value, the midpoints between neighbours (ties), and values just off them.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    float a = f16_to_f32(uint16_t(h)), b = f16_to_f32(uint16_t(h + 1));
    for (float x : {a, (a + b) / 2, std::nextafter((a + b) / 2, 0.f), std::nextafter((a + b) / 2, 1e9f)})
      for (float s : {x, -x}) ASSERT_EQ(f32_to_f16(s), ref_f32_to_f16(s)) << "value " << s;
  }
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
}

TEST(Half, Bf16RoundTripAndRounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = bf16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_bf16(f), h);
  }
  // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: rounds to even (1).
  EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256), f32_to_bf16(1.0f));
  EXPECT_EQ(f32_to_bf16(1.0f + 3.0f / 512), f32_to_bf16(1.0f + 1.0f / 128));
}
