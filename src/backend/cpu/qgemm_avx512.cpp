// AVX-512 VNNI kernels for quantized weights (see qgemm.h for the math and the packed layout).
//
// Packed kernel: a register tile of MR activation rows x NP panels (16 output columns each). Per
// 32-column block: vpdpbusd of each 64-byte weight chunk (u8: 4 k values x 16 columns) against the
// broadcast dword of 4 activation values (s8) into int32 accumulators that start at the offset
// correction -off * sum(q_a); then one convert and one FMA per accumulator apply d_a * d_w.
// GCC 12 warns about the deliberately undefined pass-through operand inside AVX-512 intrinsics.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/qgemm.h"
#include "backend/cpu/transpose_avx512.h"

namespace elm::cpu {

namespace {

void quantize_row(const float* x, int64_t K, int8_t* q, float* d, int32_t* sum) {
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < K / kActBlock; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + b * 32), x1 = _mm512_loadu_ps(x + b * 32 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(x0, abs_mask), _mm512_and_ps(x1, abs_mask)));
    const float id = amax > 0 ? 127.f / amax : 0.f;
    const __m512 vid = _mm512_set1_ps(id), lo = _mm512_set1_ps(-127.f), hi = _mm512_set1_ps(127.f);
    // Rounds to nearest even (the default MXCSR mode), like std::nearbyint in the reference.
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_min_ps(hi, _mm512_max_ps(lo, _mm512_mul_ps(x0, vid))));
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_min_ps(hi, _mm512_max_ps(lo, _mm512_mul_ps(x1, vid))));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * 32), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * 32 + 16), _mm512_cvtepi32_epi8(q1));
    sum[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    d[b] = amax / 127.f;
  }
}

// Plain Q4 blocks (byte j: value j low, j + 16 high) to packed order (byte 4c + j: value 8c + j
// low, 8c + 4 + j high), in every 16-byte lane.
inline __m512i q4_plain_to_packed(__m512i in) {
  const __m512i nib = _mm512_set1_epi8(0x0f);
  const __m512i ix = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11));
  const __m512i iy = _mm512_broadcast_i32x4(_mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 4, 5, 6, 7, 12, 13, 14, 15));
  const __mmask64 upper = 0xff00ff00ff00ff00ull;  // bytes 8..15 of each lane take the high nibbles
  const __m512i x = _mm512_shuffle_epi8(in, ix), y = _mm512_shuffle_epi8(in, iy);
  const __m512i lo = _mm512_mask_blend_epi8(upper, _mm512_and_si512(x, nib), _mm512_and_si512(_mm512_srli_epi16(x, 4), nib));
  const __m512i hi = _mm512_mask_blend_epi8(upper, _mm512_and_si512(y, nib), _mm512_and_si512(_mm512_srli_epi16(y, 4), nib));
  return _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
}

// pack_panels with the quants transposed 64 bytes per row at a time (2 blocks of Q8, 4 of Q4).
void pack(const QMatrix& w, int64_t p0, int64_t p1, uint8_t* out) {
  const bool q8 = w.type == DType::Q8;
  const size_t panel_bytes = packed_panel_bytes(w.type, w.k, w.group, w.f32_scales);
  const size_t ssize = w.f32_scales ? 4 : 2, qb = q8 ? 512 : 256;
  const int64_t groups = w.k / w.group, bpg = w.group / kActBlock, nb = w.k / kActBlock;
  const size_t scale_block = kPanelRows * ssize * (w.mins ? 2 : 1);
  const size_t row_bytes = size_t(q8 ? w.k : w.k / 2);
  const int64_t step = q8 ? 2 : 4;  // blocks per 64-byte row load
  auto block_pos = [&](int64_t kb) { return size_t(kb / bpg) * (size_t(bpg) * qb + scale_block) + size_t(kb % bpg) * qb; };
  for (int64_t p = p0; p < p1; ++p) {
    uint8_t* o = out + size_t(p - p0) * panel_bytes;
    const int64_t rows = std::min<int64_t>(kPanelRows, w.n - p * kPanelRows);
    const uint8_t* src = w.quants + size_t(p * kPanelRows) * row_bytes;
    for (int64_t kb = 0; kb < nb; kb += step) {
      const int64_t blocks = std::min(step, nb - kb);
      const size_t off = size_t(kb) * (q8 ? 32 : 16), len = size_t(blocks) * (q8 ? 32 : 16);
      const __mmask64 m = len == 64 ? ~__mmask64(0) : (__mmask64(1) << len) - 1;
      __m512i r[16];
      for (int64_t i = 0; i < kPanelRows; ++i) {
        r[i] = i < rows ? _mm512_maskz_loadu_epi8(m, src + size_t(i) * row_bytes + off) : _mm512_setzero_si512();
        if (!q8) r[i] = q4_plain_to_packed(r[i]);
      }
      avx512::transpose16x16(r);
      const __m512i bias = q8 ? _mm512_set1_epi8(char(0x80)) : _mm512_setzero_si512();
      const int64_t chunks = q8 ? 8 : 4;
      for (int64_t b = 0; b < blocks; ++b)
        for (int64_t c = 0; c < chunks; ++c)
          _mm512_storeu_si512(o + block_pos(kb + b) + size_t(c) * 64, _mm512_xor_si512(r[b * chunks + c], bias));
    }
    // Scales and mins: 16 rows of one group at a time.
    for (int64_t g = 0; g < groups; ++g) {
      uint8_t* so = o + size_t(g) * (size_t(bpg) * qb + scale_block) + size_t(bpg) * qb;
      int pl = 0;
      for (const uint8_t* plane : {w.scales, w.mins}) {
        if (!plane) continue;
        uint8_t* d = so + size_t(pl++) * kPanelRows * ssize;
        for (int64_t i = 0; i < kPanelRows; ++i) {
          if (i < rows) std::memcpy(d + size_t(i) * ssize, plane + size_t((p * kPanelRows + i) * groups + g) * ssize, ssize);
          else std::memset(d + size_t(i) * ssize, 0, ssize);
        }
      }
    }
  }
}

template <bool F32S>
inline __m512 load16(const uint8_t* p) {
  if constexpr (F32S) return _mm512_loadu_ps(reinterpret_cast<const float*>(p));
  else return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

inline __m512i bcast32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Decode reads NP panel streams at once, each restarting every few KB; the hardware prefetcher
// trains too late on streams that short (360m int4 decode: 48 GB/s of the 71 two cores can read),
// so a decode tile prefetches each stream this far ahead, running on into the panels of the next
// tile (`next`) near its end. Measured on Zen 5: 1 KB too little, 4 KB evicts data still in use.
constexpr size_t kPrefetchAhead = 2048;

// One MR x (16 NP) tile over all of K. pw: the first of NP consecutive panels; next: the first of
// the NP panels the caller runs after these (decode prefetches into them), or null.
template <DType T, bool F32S, int MR, int NP>
void tile(const uint8_t* pw, size_t panel_bytes, const Int8Rows& a, int64_t r0, int group, const float* bias,
          float* y, int64_t ldy, int64_t n0, int64_t N, const uint8_t* next = nullptr) {
  constexpr bool kQ8 = T == DType::Q8, kMins = T == DType::Q4M;
  constexpr int kOff = kQ8 ? 128 : T == DType::Q4 ? 8 : 0;
  constexpr size_t kQuantBytes = kQ8 ? 512 : 256, kScaleBytes = kPanelRows * (F32S ? 4 : 2);
  const int64_t K = a.cols, nb = K / kActBlock, bpg = group / kActBlock, groups = K / group;
  const size_t group_bytes = size_t(bpg) * kQuantBytes + kScaleBytes * (kMins ? 2 : 1);
  const __m512i nib = _mm512_set1_epi8(0x0f);

  __m512 acc[MR][NP];
  for (int r = 0; r < MR; ++r)
    for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_ps();

  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* gp[NP];
    __m512 dw[NP], mn[NP];
    for (int p = 0; p < NP; ++p) {
      gp[p] = pw + size_t(p) * panel_bytes + size_t(g) * group_bytes;
      if constexpr (MR == 1) {  // decode: prefetch (see kPrefetchAhead)
        const size_t ahead = size_t(g) * group_bytes + kPrefetchAhead;
        const uint8_t* pf = ahead < panel_bytes ? gp[p] + kPrefetchAhead
                            : next ? next + size_t(p) * panel_bytes + (ahead - panel_bytes) : nullptr;
        if (pf)
          for (size_t o = 0; o < group_bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(pf + o), _MM_HINT_T0);
      }
      dw[p] = load16<F32S>(gp[p] + size_t(bpg) * kQuantBytes);
      if constexpr (kMins) mn[p] = load16<F32S>(gp[p] + size_t(bpg) * kQuantBytes + kScaleBytes);
    }
    for (int64_t bg = 0; bg < bpg; ++bg) {
      const int64_t kb = g * bpg + bg;
      __m512i ai[MR][NP];
      const int8_t* aq[MR];
      for (int r = 0; r < MR; ++r) {
        aq[r] = a.q + (r0 + r) * K + kb * kActBlock;
        const __m512i init = _mm512_set1_epi32(-kOff * a.sum[(r0 + r) * nb + kb]);
        for (int p = 0; p < NP; ++p) ai[r][p] = init;
      }
      if constexpr (kQ8) {
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {
          __m512i w[NP];
          for (int p = 0; p < NP; ++p) w[p] = _mm512_loadu_si512(gp[p] + bg * kQuantBytes + 64 * c);
          for (int r = 0; r < MR; ++r) {
            const __m512i av = bcast32(aq[r] + 4 * c);
            for (int p = 0; p < NP; ++p) ai[r][p] = _mm512_dpbusd_epi32(ai[r][p], w[p], av);
          }
        }
      } else {
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
          __m512i lo[NP], hi[NP];
          for (int p = 0; p < NP; ++p) {
            const __m512i raw = _mm512_loadu_si512(gp[p] + bg * kQuantBytes + 64 * c);
            lo[p] = _mm512_and_si512(raw, nib);
            hi[p] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nib);
          }
          for (int r = 0; r < MR; ++r) {
            const __m512i alo = bcast32(aq[r] + 8 * c), ahi = bcast32(aq[r] + 8 * c + 4);
            for (int p = 0; p < NP; ++p) {
              ai[r][p] = _mm512_dpbusd_epi32(ai[r][p], lo[p], alo);
              ai[r][p] = _mm512_dpbusd_epi32(ai[r][p], hi[p], ahi);
            }
          }
        }
      }
      for (int r = 0; r < MR; ++r) {
        const float da = a.d[(r0 + r) * nb + kb];
        const __m512 vda = _mm512_set1_ps(da);
        for (int p = 0; p < NP; ++p)
          acc[r][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai[r][p]), _mm512_mul_ps(dw[p], vda), acc[r][p]);
        if constexpr (kMins) {
          const __m512 vs = _mm512_set1_ps(da * float(a.sum[(r0 + r) * nb + kb]));
          for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_fmadd_ps(mn[p], vs, acc[r][p]);
        }
      }
    }
  }

  for (int p = 0; p < NP; ++p) {
    const int64_t n = n0 + p * kPanelRows;
    if (n >= N) break;
    const __mmask16 m = N - n >= 16 ? __mmask16(0xffff) : __mmask16((1u << (N - n)) - 1);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + n) : _mm512_setzero_ps();
    for (int r = 0; r < MR; ++r) _mm512_mask_storeu_ps(y + (r0 + r) * ldy + n, m, _mm512_add_ps(acc[r][p], b));
  }
}

template <DType T, bool F32S, int NP>
void rows_tiles(const uint8_t* pw, size_t panel_bytes, const Int8Rows& a, int group, const float* bias, float* y,
                int64_t ldy, int64_t n0, int64_t N) {
  // Rows per tile: 5 x 2 panels keeps the 10 int32 and 10 float accumulators, the unpacked weights
  // and the broadcasts within the 32 vector registers (5 rows beat 4 by 5-12 % on Zen 5; 6 spills);
  // Q4M's mins take two more registers, so it keeps 4.
  constexpr int MR = T == DType::Q4M ? 4 : 5;
  int64_t r = 0;
  for (; r + MR <= a.rows; r += MR) tile<T, F32S, MR, NP>(pw, panel_bytes, a, r, group, bias, y, ldy, n0, N);
  switch (a.rows - r) {
    case 1: tile<T, F32S, 1, NP>(pw, panel_bytes, a, r, group, bias, y, ldy, n0, N); break;
    case 2: tile<T, F32S, 2, NP>(pw, panel_bytes, a, r, group, bias, y, ldy, n0, N); break;
    case 3: tile<T, F32S, 3, NP>(pw, panel_bytes, a, r, group, bias, y, ldy, n0, N); break;
    case 4: tile<T, F32S, 4, NP>(pw, panel_bytes, a, r, group, bias, y, ldy, n0, N); break;
    case 5: tile<T, F32S, 5, NP>(pw, panel_bytes, a, r, group, bias, y, ldy, n0, N); break;
    default: break;
  }
}

template <DType T, bool F32S>
void gemm_packed_t(const PackedQ& w, const Int8Rows& a, int64_t p0, int64_t p1, const float* bias, float* y,
                   int64_t ldy) {
  const size_t pb = packed_panel_bytes(T, w.k, w.group, F32S);
  int64_t p = p0;
  if (a.rows == 1) {  // decode: more independent accumulators to hide the dpbusd latency
    for (; p + 4 <= p1; p += 4)
      tile<T, F32S, 1, 4>(w.data + size_t(p) * pb, pb, a, 0, w.group, bias, y, ldy, p * kPanelRows, w.n,
                          p + 8 <= p1 ? w.data + size_t(p + 4) * pb : nullptr);
  }
  for (; p + 2 <= p1; p += 2)
    rows_tiles<T, F32S, 2>(w.data + size_t(p) * pb, pb, a, w.group, bias, y, ldy, p * kPanelRows, w.n);
  for (; p < p1; ++p) rows_tiles<T, F32S, 1>(w.data + size_t(p) * pb, pb, a, w.group, bias, y, ldy, p * kPanelRows, w.n);
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

// ---- Decode on the plain layout ----
//
// Activation rearrangement (gemv_prep), per activation row, per step of 64 (Q8) or 128 (Q4, Q4M)
// columns, so that each step is one 64-byte weight load against aligned activation vectors:
//   Q8:  au[64] = q + 128 as u8 (128 past K), da[16 floats]: d of the step's block 0 in lanes 0-7,
//        of block 1 in lanes 8-15. dpbusd(au, w) - dpbusd(128, w) = sum q w.
//   Q4*: alo[64], ahi[64]: values 0-15 and 16-31 of each of the step's 4 blocks (the order of a
//        plain Q4 block's low and high nibbles); ofs[16 int32] = -2 sum of block i in lanes 4i..4i+3
//        (Q4: 4 lanes make -8 sum; 0 for Q4M); da[16 floats] = d of block i in lanes 4i..4i+3.
//   Q4M: then dsum[K / group floats] = sum over the group's blocks of d * sum: the weight of the
//        group's min in the dot product.
constexpr int64_t kQ8Step = 64, kQ4Step = 128;

size_t q4_row_prep_bytes(DType type, int64_t K, int group) {
  const size_t steps = size_t((K + kQ4Step - 1) / kQ4Step);
  return steps * 256 + (type == DType::Q4M ? (size_t(K / group) * 4 + 63) / 64 * 64 : 0);
}

size_t gemv_prep_bytes(DType type, int64_t rows, int64_t K, int group) {
  if (type == DType::Q8) return size_t(rows) * size_t((K + kQ8Step - 1) / kQ8Step) * 128;
  return size_t(rows) * q4_row_prep_bytes(type, K, group);
}

void gemv_prep(DType type, const Int8Rows& a, int group, uint8_t* out) {
  const int64_t K = a.cols, nb = K / kActBlock;
  for (int64_t r = 0; r < a.rows; ++r) {
    const int8_t* q = a.q + r * K;
    const float* d = a.d + r * nb;
    const int32_t* sum = a.sum + r * nb;
    if (type == DType::Q8) {
      for (int64_t j = 0; j * kQ8Step < K; ++j, out += 128) {
        const int64_t left = K - j * kQ8Step;
        const __mmask64 m = left >= 64 ? ~__mmask64(0) : (__mmask64(1) << left) - 1;
        _mm512_storeu_si512(out, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, q + j * kQ8Step), _mm512_set1_epi8(char(0x80))));
        const float d1 = 2 * j + 1 < nb ? d[2 * j + 1] : 0.f;
        _mm512_storeu_ps(out + 64, _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(d[2 * j]), _mm512_set1_ps(d1)));
      }
      continue;
    }
    const uint8_t* row_start = out;
    for (int64_t j = 0; j * kQ4Step < K; ++j, out += 256) {
      int32_t ofs[16];
      float da[16];
      for (int64_t i = 0; i < 4; ++i) {
        const int64_t kb = 4 * j + i;
        const bool in = kb < nb;
        if (in) {
          std::memcpy(out + 16 * i, q + kb * 32, 16);
          std::memcpy(out + 64 + 16 * i, q + kb * 32 + 16, 16);
        } else {
          std::memset(out + 16 * i, 0, 16);
          std::memset(out + 64 + 16 * i, 0, 16);
        }
        for (int l = 0; l < 4; ++l) {
          ofs[4 * i + l] = in && type == DType::Q4 ? -2 * sum[kb] : 0;
          da[4 * i + l] = in ? d[kb] : 0.f;
        }
      }
      std::memcpy(out + 128, ofs, 64);
      std::memcpy(out + 192, da, 64);
    }
    if (type == DType::Q4M) {
      auto* dsum = reinterpret_cast<float*>(out);
      const int64_t bpg = group / kActBlock;
      for (int64_t g = 0; g < K / group; ++g) {
        float s = 0;
        for (int64_t b = 0; b < bpg; ++b) s += d[g * bpg + b] * float(sum[g * bpg + b]);
        dsum[g] = s;
      }
    }
    out = const_cast<uint8_t*>(row_start) + q4_row_prep_bytes(type, K, group);
  }
}

// The first `count` scales at p as floats (the rest 0).
template <bool F32S>
inline __m512 load_scales(const uint8_t* p, int count) {
  const __mmask16 m = __mmask16((1u << count) - 1);
  if constexpr (F32S) return _mm512_maskz_loadu_ps(m, p);
  else return _mm512_cvtph_ps(_mm256_zextsi128_si256(_mm_maskz_loadu_epi16(__mmask8(m), p)));
}

// Lane -> scale index within one step: blocks of 32 values; a step covers `step` values.
template <int G, int64_t Step>
inline __m512i scale_lanes() {
  // lane l covers values (Step / 16) * l .. of the step
  alignas(64) int32_t idx[16];
  for (int l = 0; l < 16; ++l) idx[l] = int32_t((Step / 16) * l / G);
  return _mm512_load_si512(idx);
}

template <int R, int G, bool F32S>
void gemv_q8(const QMatrix& w, const uint8_t* prep, int64_t n0, int64_t n1, const float* bias, float* y, int64_t ldy) {
  const int64_t K = w.k, steps = (K + kQ8Step - 1) / kQ8Step, groups = K / G;
  const size_t ssize = F32S ? 4 : 2, row_prep = size_t(steps) * 128;
  const __m512i c128 = _mm512_set1_epi8(char(0x80)), lanes = scale_lanes<G, kQ8Step>();
  for (int64_t n = n0; n < n1; ++n) {
    const int8_t* wq = reinterpret_cast<const int8_t*>(w.quants) + n * K;
    const uint8_t* ws = w.scales + size_t(n * groups) * ssize;
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t j = 0; j < steps; ++j) {
      const int64_t left = K - j * kQ8Step;
      _mm_prefetch(reinterpret_cast<const char*>(wq + j * kQ8Step + kPrefetchAhead), _MM_HINT_T0);
      const __m512i wv = left >= 64 ? _mm512_loadu_si512(wq + j * kQ8Step)
                                    : _mm512_maskz_loadu_epi8((__mmask64(1) << left) - 1, wq + j * kQ8Step);
      const __m512i corr = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c128, wv);
      const int64_t g0 = j * kQ8Step / G;
      const int count = int(std::min<int64_t>(G == 32 ? 2 : 1, groups - g0));
      const __m512 dw = _mm512_permutexvar_ps(lanes, load_scales<F32S>(ws + size_t(g0) * ssize, count));
      for (int r = 0; r < R; ++r) {
        const uint8_t* pr = prep + size_t(r) * row_prep + size_t(j) * 128;
        const __m512i s = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(pr), wv), corr);
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_loadu_ps(pr + 64)), acc[r]);
      }
    }
    for (int r = 0; r < R; ++r) y[r * ldy + n] = _mm512_reduce_add_ps(acc[r]) + (bias ? bias[n] : 0.f);
  }
}

template <int R, int G, bool F32S, bool kMins>
void gemv_q4(const QMatrix& w, const uint8_t* prep, int64_t n0, int64_t n1, const float* bias, float* y, int64_t ldy) {
  const int64_t K = w.k, steps = (K + kQ4Step - 1) / kQ4Step, groups = K / G;
  const size_t ssize = F32S ? 4 : 2, row_prep = q4_row_prep_bytes(kMins ? DType::Q4M : DType::Q4, K, G);
  const __m512i nib = _mm512_set1_epi8(0x0f), lanes = scale_lanes<G, kQ4Step>();
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* wq = w.quants + n * K / 2;
    const uint8_t* ws = w.scales + size_t(n * groups) * ssize;
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t j = 0; j < steps; ++j) {
      const int64_t left = (K - j * kQ4Step) / 2;
      _mm_prefetch(reinterpret_cast<const char*>(wq + j * 64 + kPrefetchAhead), _MM_HINT_T0);
      const __m512i raw = left >= 64 ? _mm512_loadu_si512(wq + j * 64)
                                     : _mm512_maskz_loadu_epi8((__mmask64(1) << left) - 1, wq + j * 64);
      const __m512i lo = _mm512_and_si512(raw, nib), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nib);
      const int64_t g0 = j * kQ4Step / G;
      const int count = int(std::min<int64_t>(kQ4Step / G > 0 ? kQ4Step / G : 1, groups - g0));
      const __m512 dw = _mm512_permutexvar_ps(lanes, load_scales<F32S>(ws + size_t(g0) * ssize, count));
      for (int r = 0; r < R; ++r) {
        const uint8_t* pr = prep + size_t(r) * row_prep + size_t(j) * 256;
        __m512i s = _mm512_dpbusd_epi32(_mm512_loadu_si512(pr + 128), lo, _mm512_loadu_si512(pr));
        s = _mm512_dpbusd_epi32(s, hi, _mm512_loadu_si512(pr + 64));
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_loadu_ps(pr + 192)), acc[r]);
      }
    }
    if constexpr (kMins) {
      const uint8_t* wm = w.mins + size_t(n * groups) * ssize;
      for (int r = 0; r < R; ++r) {
        const auto* dsum = reinterpret_cast<const float*>(prep + size_t(r) * row_prep + size_t(steps) * 256);
        int64_t g = 0;
        // Whole vectors with plain loads (a masked load of a weight stream defeats the prefetcher).
        for (; g + 16 <= groups; g += 16) {
          const __m512 m = F32S ? _mm512_loadu_ps(wm + size_t(g) * 4)
                                : _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wm + size_t(g) * 2)));
          acc[r] = _mm512_fmadd_ps(m, _mm512_loadu_ps(dsum + g), acc[r]);
        }
        if (g < groups) {
          const int count = int(groups - g);
          const __m512 ds = _mm512_maskz_loadu_ps(__mmask16((1u << count) - 1), dsum + g);
          acc[r] = _mm512_fmadd_ps(load_scales<F32S>(wm + size_t(g) * ssize, count), ds, acc[r]);
        }
      }
    }
    for (int r = 0; r < R; ++r) y[r * ldy + n] = _mm512_reduce_add_ps(acc[r]) + (bias ? bias[n] : 0.f);
  }
}

template <int G, bool F32S>
void gemv_g(const QMatrix& w, int64_t rows, const uint8_t* prep, int64_t n0, int64_t n1, const float* bias, float* y,
            int64_t ldy) {
#define ELM_GEMV_ROWS(R)                                                                        \
  case R:                                                                                       \
    if (w.type == DType::Q8) return gemv_q8<R, G, F32S>(w, prep, n0, n1, bias, y, ldy);         \
    if (w.type == DType::Q4) return gemv_q4<R, G, F32S, false>(w, prep, n0, n1, bias, y, ldy);  \
    return gemv_q4<R, G, F32S, true>(w, prep, n0, n1, bias, y, ldy);
  switch (rows) {
    ELM_GEMV_ROWS(1)
    ELM_GEMV_ROWS(2)
    ELM_GEMV_ROWS(3)
    ELM_GEMV_ROWS(4)
    default: return;
  }
#undef ELM_GEMV_ROWS
}

void gemv_plain(const QMatrix& w, const Int8Rows& a, const uint8_t* prep, int64_t n0, int64_t n1, const float* bias,
                float* y, int64_t ldy) {
  switch (w.group * 2 + int(w.f32_scales)) {
    case 64: return gemv_g<32, false>(w, a.rows, prep, n0, n1, bias, y, ldy);
    case 65: return gemv_g<32, true>(w, a.rows, prep, n0, n1, bias, y, ldy);
    case 128: return gemv_g<64, false>(w, a.rows, prep, n0, n1, bias, y, ldy);
    case 129: return gemv_g<64, true>(w, a.rows, prep, n0, n1, bias, y, ldy);
    case 256: return gemv_g<128, false>(w, a.rows, prep, n0, n1, bias, y, ldy);
    case 257: return gemv_g<128, true>(w, a.rows, prep, n0, n1, bias, y, ldy);
    default: return;
  }
}

}  // namespace

const QKernels kQKernelsAvx512 = {quantize_row, gemm_packed, pack, gemv_prep_bytes, gemv_prep, gemv_plain};

}  // namespace elm::cpu
