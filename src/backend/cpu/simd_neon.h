// The SIMD interface of the portable kernel templates (fgemm_impl.h, vec_impl.h) for aarch64
// Advanced SIMD: 4 floats per vector. Tails go through a zeroed stack buffer. Only for *_neon.cpp.
#pragma once
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace elm::cpu::neon {

struct Simd {
  using V = float32x4_t;
  static constexpr int W = 4;
  static constexpr int kGemmRows = 6;  // fgemm tile: 6 x 8 accumulators + 2 weights of 32 registers

  static V zero() { return vdupq_n_f32(0.f); }
  static V bcast(float f) { return vdupq_n_f32(f); }
  static V load(const float* p) { return vld1q_f32(p); }
  static V load(const float* p, int n) { return widen<DType::F32>(p, n); }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  static void store(float* p, V v, int n) {
    float t[4];
    vst1q_f32(t, v);
    std::memcpy(p, t, size_t(n) * 4);
  }
  static V add(V a, V b) { return vaddq_f32(a, b); }
  static V sub(V a, V b) { return vsubq_f32(a, b); }
  static V mul(V a, V b) { return vmulq_f32(a, b); }
  static V div(V a, V b) { return vdivq_f32(a, b); }
  static V max(V a, V b) { return vmaxq_f32(a, b); }
  static V min(V a, V b) { return vminq_f32(a, b); }
  static V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  static float sum(V v) { return vaddvq_f32(v); }
  static void sum4(V a, V b, V c, V d, float* out) { vst1q_f32(out, vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d))); }
  static float hmax(V v) { return vmaxvq_f32(v); }
  static V round(V v) { return vrndnq_f32(v); }
  static V pow2(V n) {
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23));
  }
  static V keep_ge(V x, float t, V v) {
    return vreinterpretq_f32_u32(vandq_u32(vcgeq_f32(x, vdupq_n_f32(t)), vreinterpretq_u32_f32(v)));
  }

  template <DType DT>
  static V widen(const void* p, int n) {
    constexpr size_t kSize = DT == DType::F32 ? 4 : DT == DType::I8 ? 1 : 2;
    alignas(16) uint8_t tmp[16] = {};
    if (n < 4) {
      std::memcpy(tmp, p, size_t(n) * kSize);
      p = tmp;
    }
    if constexpr (DT == DType::F32) {
      return vld1q_f32(static_cast<const float*>(p));
    } else if constexpr (DT == DType::F16) {
      return vcvt_f32_f16(vld1_f16(static_cast<const float16_t*>(p)));
    } else if constexpr (DT == DType::BF16) {
      return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(static_cast<const uint16_t*>(p)), 16));
    } else {
      int32_t four;
      std::memcpy(&four, p, 4);
      const int8x8_t b = vreinterpret_s8_s32(vdup_n_s32(four));
      return vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(b))));
    }
  }
  static void store_f16(uint16_t* p, V v, int n) {  // FPCR rounding: nearest even
    uint16_t t[4];
    vst1_f16(reinterpret_cast<float16_t*>(t), vcvt_f16_f32(v));
    std::memcpy(p, t, size_t(n) * 2);
  }
  static void transpose(V r[4]) {
    const float32x4_t t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]);
    const float32x4_t t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]);
    auto d = [](float32x4_t x) { return vreinterpretq_f64_f32(x); };
    r[0] = vreinterpretq_f32_f64(vtrn1q_f64(d(t0), d(t2)));
    r[1] = vreinterpretq_f32_f64(vtrn1q_f64(d(t1), d(t3)));
    r[2] = vreinterpretq_f32_f64(vtrn2q_f64(d(t0), d(t2)));
    r[3] = vreinterpretq_f32_f64(vtrn2q_f64(d(t1), d(t3)));
  }
};

}  // namespace elm::cpu::neon
