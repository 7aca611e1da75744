// Scalar half / bfloat16 conversions against the compiler's own _Float16 and exact bit rules.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/half.h"

using namespace elm;

// The compiler's IEEE half: _Float16 on x86-64; GCC 12 offers it in C++ on aarch64 only as __fp16.
#if defined(__aarch64__)
using CompilerHalf = __fp16;
#else
using CompilerHalf = _Float16;
#endif

TEST(Half, F16ToF32MatchesCompilerForAllBitPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    CompilerHalf ref;
    uint16_t bits = uint16_t(h);
    std::memcpy(&ref, &bits, 2);
    float got = f16_to_f32(bits);
    if (std::isnan(float(ref))) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      EXPECT_EQ(got, float(ref)) << "bits " << h;
    }
  }
}

TEST(Half, F32ToF16RoundsLikeCompiler) {
  // Every f16 value, the midpoints between neighbours (ties), and values just off them.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    float a = f16_to_f32(uint16_t(h)), b = f16_to_f32(uint16_t(h + 1));
    for (float x : {a, (a + b) / 2, std::nextafter((a + b) / 2, 0.f), std::nextafter((a + b) / 2, 1e9f)}) {
      for (float s : {x, -x}) {
        CompilerHalf ref = CompilerHalf(s);
        uint16_t ref_bits;
        std::memcpy(&ref_bits, &ref, 2);
        ASSERT_EQ(f32_to_f16(s), ref_bits) << "value " << s;
      }
    }
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
