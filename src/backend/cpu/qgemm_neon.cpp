// aarch64 Advanced SIMD kernels for quantized weights (see qgemm.h). They read the same packed
// panels as the x86 kernels: a 64-byte chunk is four int8x16 registers of 4 columns x 4 k values.
// The 4-value dot products use sdot (vdotq_s32) where the compiler targets the dot-product
// extension, else widening multiplies and pairwise adds. Decode on the plain layout packs on the fly.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/qgemm.h"

namespace elm::cpu {

namespace {

void quantize_row(const float* x, int64_t K, int8_t* q, float* d, int32_t* sum) {
  for (int64_t b = 0; b < K / kActBlock; ++b) {
    const float* xb = x + b * 32;
    float32x4_t m = vdupq_n_f32(0.f);
    for (int i = 0; i < 8; ++i) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(xb + 4 * i)));
    const float amax = vmaxvq_f32(m);
    const float id = amax > 0 ? 127.f / amax : 0.f;
    int32_t s = 0;
    for (int i = 0; i < 8; i += 2) {
      int32x4_t v[2];
      for (int j = 0; j < 2; ++j) {
        const float32x4_t c = vminq_f32(vdupq_n_f32(127.f), vmaxq_f32(vdupq_n_f32(-127.f), vmulq_n_f32(vld1q_f32(xb + 4 * (i + j)), id)));
        v[j] = vcvtnq_s32_f32(c);  // round to nearest even, like std::nearbyint
        s += vaddvq_s32(v[j]);
      }
      const int16x8_t h = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
      vst1_s8(q + b * 32 + 4 * i, vmovn_s16(h));
    }
    sum[b] = s;
    d[b] = amax / 127.f;
  }
}

// acc[lane] += sum of the 4 products of w and a in that lane's 4 bytes.
inline int32x4_t dot4(int32x4_t acc, int8x16_t w, int8x16_t a) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, w, a);
#else
  const int16x8_t lo = vmull_s8(vget_low_s8(w), vget_low_s8(a)), hi = vmull_high_s8(w, a);
  return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
#endif
}

template <bool F32S>
inline float32x4_t load4(const uint8_t* p) {
  if constexpr (F32S) return vld1q_f32(reinterpret_cast<const float*>(p));
  else return vcvt_f32_f16(vld1_f16(reinterpret_cast<const float16_t*>(p)));
}

inline int8x16_t bcast32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

// One MR x 16 tile (one panel: four groups of 4 columns) over all of K.
template <DType T, bool F32S, int MR>
void tile(const uint8_t* pw, const Int8Rows& a, int64_t r0, int group, const float* bias, float* y, int64_t ldy,
          int64_t n0, int64_t N) {
  constexpr bool kQ8 = T == DType::Q8, kMins = T == DType::Q4M;
  constexpr size_t kQuantBytes = kQ8 ? 512 : 256, kScaleBytes = kPanelRows * (F32S ? 4 : 2), kS4 = kScaleBytes / 4;
  const int64_t K = a.cols, nb = K / kActBlock, bpg = group / kActBlock, groups = K / group;
  const size_t group_bytes = size_t(bpg) * kQuantBytes + kScaleBytes * (kMins ? 2 : 1);
  float32x4_t acc[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < 4; ++v) acc[r][v] = vdupq_n_f32(0.f);
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* gp = pw + size_t(g) * group_bytes;
    const uint8_t* sp = gp + size_t(bpg) * kQuantBytes;
    float32x4_t dw[4], mn[4];
    for (int v = 0; v < 4; ++v) {
      dw[v] = load4<F32S>(sp + v * kS4);
      if constexpr (kMins) mn[v] = load4<F32S>(sp + kScaleBytes + v * kS4);
    }
    for (int64_t bg = 0; bg < bpg; ++bg) {
      const int64_t kb = g * bpg + bg;
      const uint8_t* qp = gp + bg * kQuantBytes;
      int32x4_t ai[MR][4];
      for (int r = 0; r < MR; ++r) {
        const int32x4_t init = vdupq_n_s32(T == DType::Q4 ? -8 * a.sum[(r0 + r) * nb + kb] : 0);
        for (int v = 0; v < 4; ++v) ai[r][v] = init;
      }
      for (int c = 0; c < (kQ8 ? 8 : 4); ++c) {
        int8x16_t lo[4], hi[4];
        for (int v = 0; v < 4; ++v) {
          const uint8x16_t raw = vld1q_u8(qp + 64 * c + 16 * v);
          if constexpr (kQ8) {
            lo[v] = vreinterpretq_s8_u8(veorq_u8(raw, vdupq_n_u8(0x80)));  // stored + 128
          } else {
            lo[v] = vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f)));
            hi[v] = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));
          }
        }
        for (int r = 0; r < MR; ++r) {
          const int8_t* aq = a.q + (r0 + r) * K + kb * kActBlock;
          const int8x16_t alo = bcast32(aq + (kQ8 ? 4 : 8) * c);
          for (int v = 0; v < 4; ++v) ai[r][v] = dot4(ai[r][v], lo[v], alo);
          if constexpr (!kQ8) {
            const int8x16_t ahi = bcast32(aq + 8 * c + 4);
            for (int v = 0; v < 4; ++v) ai[r][v] = dot4(ai[r][v], hi[v], ahi);
          }
        }
      }
      for (int r = 0; r < MR; ++r) {
        const float da = a.d[(r0 + r) * nb + kb];
        for (int v = 0; v < 4; ++v) {
          acc[r][v] = vfmaq_f32(acc[r][v], vcvtq_f32_s32(ai[r][v]), vmulq_n_f32(dw[v], da));
          if constexpr (kMins) acc[r][v] = vfmaq_n_f32(acc[r][v], mn[v], da * float(a.sum[(r0 + r) * nb + kb]));
        }
      }
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < 4; ++v) {
      float out[4];
      vst1q_f32(out, acc[r][v]);
      for (int i = 0; i < 4; ++i) {
        const int64_t n = n0 + 4 * v + i;
        if (n < N) y[(r0 + r) * ldy + n] = out[i] + (bias ? bias[n] : 0.f);
      }
    }
}

template <DType T, bool F32S>
void gemm_packed_t(const PackedQ& w, const Int8Rows& a, int64_t p0, int64_t p1, const float* bias, float* y,
                   int64_t ldy) {
  const size_t pb = packed_panel_bytes(T, w.k, w.group, F32S);
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* pw = w.data + size_t(p) * pb;
    int64_t r = 0;
    for (; r + 2 <= a.rows; r += 2) tile<T, F32S, 2>(pw, a, r, w.group, bias, y, ldy, p * kPanelRows, w.n);
    if (r < a.rows) tile<T, F32S, 1>(pw, a, r, w.group, bias, y, ldy, p * kPanelRows, w.n);
  }
}

void gemm_packed(const PackedQ& w, const Int8Rows& a, int64_t p0, int64_t p1, const float* bias, float* y,
                 int64_t ldy) {
  switch (w.type) {
    case DType::Q8:
      return w.f32_scales ? gemm_packed_t<DType::Q8, true>(w, a, p0, p1, bias, y, ldy)
                          : gemm_packed_t<DType::Q8, false>(w, a, p0, p1, bias, y, ldy);
    case DType::Q4:
      return w.f32_scales ? gemm_packed_t<DType::Q4, true>(w, a, p0, p1, bias, y, ldy)
                          : gemm_packed_t<DType::Q4, false>(w, a, p0, p1, bias, y, ldy);
    case DType::Q4M:
      return w.f32_scales ? gemm_packed_t<DType::Q4M, true>(w, a, p0, p1, bias, y, ldy)
                          : gemm_packed_t<DType::Q4M, false>(w, a, p0, p1, bias, y, ldy);
    default: return;
  }
}

}  // namespace

const QKernels kQKernelsNeon = {quantize_row, gemm_packed, pack_panels, nullptr, nullptr, nullptr};

}  // namespace elm::cpu
