// AVX2 kernels for quantized weights (see qgemm.h), for x86 CPUs without AVX-512 VNNI.
//
// Without vpdpbusd the int8 dot product is vpmaddubsw (u8 x s8 -> pairs summed to s16, saturating)
// then vpmaddwd with ones (-> s32). Q8 weights are signed, so they go through the sign trick
// (|w| as u8, a with w's sign) that keeps every pair below 2 * 127 * 127 < 2^15; Q4 nibbles are
// already unsigned. The packed tile kernel reads the same panels as AVX-512 (a 64-byte chunk is two
// ymm halves of 8 columns each).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/qgemm.h"

namespace elm::cpu {

namespace {

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// max |x| over one block of 32.
inline float block_amax(const float* x) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + 8 * i), abs_mask));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void quantize_row(const float* x, int64_t K, int8_t* q, float* d, int32_t* sum) {
  for (int64_t b = 0; b < K / kActBlock; ++b) {
    const float* xb = x + b * 32;
    const float amax = block_amax(xb);
    const float id = amax > 0 ? 127.f / amax : 0.f;
    const __m256 vid = _mm256_set1_ps(id), lo = _mm256_set1_ps(-127.f), hi = _mm256_set1_ps(127.f);
    __m256i v[4];
    for (int i = 0; i < 4; ++i)  // round to nearest even, like std::nearbyint
      v[i] = _mm256_cvtps_epi32(_mm256_min_ps(hi, _mm256_max_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(xb + 8 * i), vid))));
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    sum[b] = _mm_cvtsi128_si32(s4);
    // int32 -> int8 in order: packs interleave 128-bit halves, the permute restores the order.
    const __m256i p16 = _mm256_packs_epi32(v[0], v[1]), p16b = _mm256_packs_epi32(v[2], v[3]);
    const __m256i p8 = _mm256_packs_epi16(p16, p16b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * 32),
                        _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    d[b] = amax / 127.f;
  }
}

// Sum of 4 signed products per int32 lane: w (s8) . a (s8), by the sign trick.
inline __m256i dot_s8(__m256i w, __m256i a) {
  const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(a, w));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

template <bool F32S>
inline __m256 load8(const uint8_t* p) {
  if constexpr (F32S) return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  else return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

inline __m256i bcast32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// One MR x 16 tile (one panel, two ymm halves) over all of K.
template <DType T, bool F32S, int MR>
void tile(const uint8_t* pw, const Int8Rows& a, int64_t r0, int group, const float* bias, float* y, int64_t ldy,
          int64_t n0, int64_t N) {
  constexpr bool kQ8 = T == DType::Q8, kMins = T == DType::Q4M;
  constexpr size_t kQuantBytes = kQ8 ? 512 : 256, kScaleBytes = kPanelRows * (F32S ? 4 : 2);
  const int64_t K = a.cols, nb = K / kActBlock, bpg = group / kActBlock, groups = K / group;
  const size_t group_bytes = size_t(bpg) * kQuantBytes + kScaleBytes * (kMins ? 2 : 1);
  const __m256i nib = _mm256_set1_epi8(0x0f), flip = _mm256_set1_epi8(char(0x80)), ones = _mm256_set1_epi16(1);
  __m256 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* gp = pw + size_t(g) * group_bytes;
    const uint8_t* sp = gp + size_t(bpg) * kQuantBytes;
    const __m256 dw[2] = {load8<F32S>(sp), load8<F32S>(sp + kScaleBytes / 2)};
    __m256 mn[2];
    if constexpr (kMins) mn[0] = load8<F32S>(sp + kScaleBytes), mn[1] = load8<F32S>(sp + kScaleBytes * 3 / 2);
    for (int64_t bg = 0; bg < bpg; ++bg) {
      const int64_t kb = g * bpg + bg;
      const uint8_t* qp = gp + bg * kQuantBytes;
      __m256i ai[MR][2];
      for (int r = 0; r < MR; ++r) {
        const int8_t* aq = a.q + (r0 + r) * K + kb * kActBlock;
        for (int h = 0; h < 2; ++h) {
          if constexpr (kQ8) {
            __m256i s = _mm256_setzero_si256();
            for (int c = 0; c < 8; ++c) {
              const __m256i w = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qp + 64 * c + 32 * h)), flip);
              s = _mm256_add_epi32(s, dot_s8(w, bcast32(aq + 4 * c)));
            }
            ai[r][h] = s;
          } else {
            // Nibble products stay below 2 * 15 * 127: eight of them fit in the s16 sums.
            __m256i s16 = _mm256_setzero_si256();
            for (int c = 0; c < 4; ++c) {
              const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qp + 64 * c + 32 * h));
              s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(_mm256_and_si256(raw, nib), bcast32(aq + 8 * c)));
              s16 = _mm256_add_epi16(
                  s16, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(raw, 4), nib), bcast32(aq + 8 * c + 4)));
            }
            ai[r][h] = _mm256_madd_epi16(s16, ones);
            if constexpr (T == DType::Q4)
              ai[r][h] = _mm256_sub_epi32(ai[r][h], _mm256_set1_epi32(8 * a.sum[(r0 + r) * nb + kb]));
          }
        }
      }
      for (int r = 0; r < MR; ++r) {
        const float da = a.d[(r0 + r) * nb + kb];
        const __m256 vda = _mm256_set1_ps(da);
        for (int h = 0; h < 2; ++h) {
          acc[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ai[r][h]), _mm256_mul_ps(dw[h], vda), acc[r][h]);
          if constexpr (kMins)
            acc[r][h] = _mm256_fmadd_ps(mn[h], _mm256_set1_ps(da * float(a.sum[(r0 + r) * nb + kb])), acc[r][h]);
        }
      }
    }
  }
  for (int h = 0; h < 2; ++h) {
    const int64_t n = n0 + 8 * h;
    if (n >= N) break;
    const int cols = int(std::min<int64_t>(8, N - n));
    for (int r = 0; r < MR; ++r) {
      alignas(32) float out[8];
      _mm256_store_ps(out, acc[r][h]);
      for (int i = 0; i < cols; ++i) y[(r0 + r) * ldy + n + i] = out[i] + (bias ? bias[n + i] : 0.f);
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

// ---- Decode on the plain layout: one 32-value block per ymm, in the activations' own order ----

size_t gemv_prep_bytes(DType, int64_t, int64_t, int) { return 0; }
void gemv_prep(DType, const Int8Rows&, int, uint8_t*) {}

inline float load_scale(const uint8_t* p, size_t i, bool f32) {
  if (f32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return _cvtsh_ss(h);
}

void gemv_plain(const QMatrix& w, const Int8Rows& a, const uint8_t*, int64_t n0, int64_t n1, const float* bias,
                float* y, int64_t ldy) {
  const int64_t K = w.k, nb = K / kActBlock, bpg = w.group / kActBlock, groups = K / w.group;
  const __m256i nib = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8(8);
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t r = 0; r < a.rows; ++r) {
      __m256 acc = _mm256_setzero_ps();
      float extra = 0;  // Q4M: the mins' share
      for (int64_t kb = 0; kb < nb; ++kb) {
        const int64_t g = kb / bpg;
        const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + r * K + kb * 32));
        __m256i wv;
        if (w.type == DType::Q8) {
          wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.quants + n * K + kb * 32));
        } else {
          const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.quants + (n * K + kb * 32) / 2));
          const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);  // values 0-15 | 16-31
          wv = _mm256_and_si256(both, nib);
          if (w.type == DType::Q4) wv = _mm256_sub_epi8(wv, eight);
        }
        const float da = a.d[r * nb + kb], dw = load_scale(w.scales, size_t(n * groups + g), w.f32_scales);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_s8(wv, av)), _mm256_set1_ps(dw * da), acc);
        if (w.type == DType::Q4M)
          extra += load_scale(w.mins, size_t(n * groups + g), w.f32_scales) * da * float(a.sum[r * nb + kb]);
      }
      y[r * ldy + n] = hsum(acc) + extra + (bias ? bias[n] : 0.f);
    }
  }
}

}  // namespace

const QKernels kQKernelsAvx2 = {quantize_row, gemm_packed, pack_panels, gemv_prep_bytes, gemv_prep, gemv_plain};

}  // namespace elm::cpu
