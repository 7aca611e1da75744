#include <cmath>

#include "backend/cpu/kernels.h"

namespace elm::cpu {

void rope(float* x, int64_t T, int64_t C, const int32_t* positions, const float* inv_freq, int64_t F, int64_t head_dim,
          bool pairs, float attn_factor) {
  for (int64_t t = 0; t < T; ++t) {
    const float p = float(positions[t]);
    for (int64_t i = 0; i < F; ++i) {
      // transformers: freqs = pos * inv_freq in float32, then cos/sin in float32.
      const float angle = p * inv_freq[i];
      const float c = float(std::cos(double(angle))) * attn_factor;
      const float s = float(std::sin(double(angle))) * attn_factor;
      for (int64_t h0 = 0; h0 < C; h0 += head_dim) {
        float* head = x + t * C + h0;
        const int64_t a = pairs ? 2 * i : i, b = pairs ? 2 * i + 1 : i + F;
        const float xa = head[a], xb = head[b];
        head[a] = xa * c - xb * s;
        head[b] = xb * c + xa * s;
      }
    }
  }
}

}  // namespace elm::cpu
