#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/kernels.h"

namespace elm::cpu {

void rope_table(const int32_t* positions, int64_t T, const float* inv_freq, int64_t F, float attn_factor, float* table) {
  for (int64_t t = 0; t < T; ++t) {
    const float p = float(positions[t]);
    float* cos_t = table + t * 2 * F;
    float* sin_t = cos_t + F;
    for (int64_t i = 0; i < F; ++i) {
      // transformers: freqs = pos * inv_freq in float32, then cos/sin in float32.
      const float angle = p * inv_freq[i];
      cos_t[i] = float(std::cos(double(angle))) * attn_factor;
      sin_t[i] = float(std::sin(double(angle))) * attn_factor;
    }
  }
}

void rope_apply(const float* x, float* y, int64_t T, int64_t C, const float* table, int64_t F, int64_t head_dim,
                bool pairs) {
  for (int64_t t = 0; t < T; ++t) {
    const float* cs = table + t * 2 * F;
    const float* sn = cs + F;
    for (int64_t h0 = 0; h0 < C; h0 += head_dim) {
      const float* xh = x + t * C + h0;
      float* yh = y + t * C + h0;
      if (pairs) {
        for (int64_t i = 0; i < F; ++i) {
          const float xa = xh[2 * i], xb = xh[2 * i + 1];
          yh[2 * i] = xa * cs[i] - xb * sn[i];
          yh[2 * i + 1] = xb * cs[i] + xa * sn[i];
        }
      } else {
        // Iteration i reads and writes only dims i and i + F, so it vectorizes even in place.
#pragma GCC ivdep
        for (int64_t i = 0; i < F; ++i) {
          const float xa = xh[i], xb = xh[i + F];
          yh[i] = xa * cs[i] - xb * sn[i];
          yh[i + F] = xb * cs[i] + xa * sn[i];
        }
      }
      if (y != x && 2 * F < head_dim) std::memcpy(yh + 2 * F, xh + 2 * F, size_t(head_dim - 2 * F) * 4);
    }
  }
}

void rope(float* x, int64_t T, int64_t C, const int32_t* positions, const float* inv_freq, int64_t F, int64_t head_dim,
          bool pairs, float attn_factor) {
  std::vector<float> table(static_cast<size_t>(T * 2 * F));
  rope_table(positions, T, inv_freq, F, attn_factor, table.data());
  rope_apply(x, x, T, C, table.data(), F, head_dim, pairs);
}

}  // namespace elm::cpu
