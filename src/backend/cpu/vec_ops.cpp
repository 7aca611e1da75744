// The scalar VecOps (one float per "vector") for CPUs without a SIMD family, and the dispatch.
#include "backend/cpu/vec_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/vec_impl.h"
#include "core/half.h"

namespace elm::cpu {

namespace {

struct Scalar {
  using V = float;
  static constexpr int W = 1;
  static V zero() { return 0.f; }
  static V bcast(float f) { return f; }
  static V load(const float* p) { return *p; }
  static V load(const float* p, int n) { return n > 0 ? *p : 0.f; }
  static void store(float* p, V v) { *p = v; }
  static void store(float* p, V v, int n) {
    if (n > 0) *p = v;
  }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V div(V a, V b) { return a / b; }
  static V max(V a, V b) { return std::max(a, b); }
  static V min(V a, V b) { return std::min(a, b); }
  static V fma(V a, V b, V c) { return std::fma(a, b, c); }
  static float sum(V v) { return v; }
  static void sum4(V a, V b, V c, V d, float* out) { out[0] = a, out[1] = b, out[2] = c, out[3] = d; }
  static float hmax(V v) { return v; }
  static V round(V v) { return std::nearbyint(v); }
  static V pow2(V n) { return std::ldexp(1.f, int(n)); }
  static V keep_ge(V x, float t, V v) { return x >= t ? v : 0.f; }
  template <DType DT>
  static V widen(const void* p, int n) {
    if (n <= 0) return 0.f;
    if constexpr (DT == DType::F32) return *static_cast<const float*>(p);
    else if constexpr (DT == DType::I8) return float(*static_cast<const int8_t*>(p));
    else {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return DT == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
  }
  static void store_f16(uint16_t* p, V v, int n) {
    if (n > 0) *p = f32_to_f16(v);
  }
};

}  // namespace

const VecOps kVecOpsScalar = VecImpl<Scalar>::table();

const VecOps& vec_ops(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx512: return kVecOpsAvx512;
    case Isa::Avx2: return kVecOpsAvx2;
#endif
#if defined(__aarch64__)
    case Isa::Neon: return kVecOpsNeon;
#endif
    default: return kVecOpsScalar;
  }
}

}  // namespace elm::cpu
