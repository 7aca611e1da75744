#include <cmath>
#include <vector>

#include "backend/cpu/kernels.h"

namespace elm::cpu {

void rope_table(const int32_t* positions, int64_t T, const float* inv_freq, int64_t F, float attn_factor, float* table) {
  for (int64_t t = 0; t < T; ++t) {
    const float p = float(positions[t]);
    for (int64_t i = 0; i < F; ++i) {
      // transformers: freqs = pos * inv_freq in float32, then cos/sin in float32.
      const float angle = p * inv_freq[i];
      table[t * 2 * F + 2 * i] = float(std::cos(double(angle))) * attn_factor;
      table[t * 2 * F + 2 * i + 1] = float(std::sin(double(angle))) * attn_factor;
    }
  }
}

void rope_apply(float* x, int64_t T, int64_t C, const float* table, int64_t F, int64_t head_dim, bool pairs) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h0 = 0; h0 < C; h0 += head_dim) {
      float* head = x + t * C + h0;
      for (int64_t i = 0; i < F; ++i) {
        const float c = table[t * 2 * F + 2 * i], s = table[t * 2 * F + 2 * i + 1];
        const int64_t a = pairs ? 2 * i : i, b = pairs ? 2 * i + 1 : i + F;
        const float xa = head[a], xb = head[b];
        head[a] = xa * c - xb * s;
        head[b] = xb * c + xa * s;
      }
    }
}

void rope(float* x, int64_t T, int64_t C, const int32_t* positions, const float* inv_freq, int64_t F, int64_t head_dim,
          bool pairs, float attn_factor) {
  std::vector<float> table(static_cast<size_t>(T * 2 * F));
  rope_table(positions, T, inv_freq, F, attn_factor, table.data());
  rope_apply(x, T, C, table.data(), F, head_dim, pairs);
}

}  // namespace elm::cpu
