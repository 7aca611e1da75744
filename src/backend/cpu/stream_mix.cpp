// StreamMix: per-row linear combinations of parallel residual streams (AltUp's predict and correct).
#include "backend/cpu/kernels.h"

namespace elm::cpu {

void stream_mix(const float* x, int64_t R, int64_t n, int64_t C, const float* coefs, int64_t m, bool coefs_broadcast,
                float* y) {
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * n * C;
    const float* cr = coefs_broadcast ? coefs : coefs + r * m * n;
    for (int64_t j = 0; j < m; ++j) {
      float* yj = y + (r * m + j) * C;
      for (int64_t c = 0; c < C; ++c) {
        float acc = 0;
        for (int64_t i = 0; i < n; ++i) acc += cr[j * n + i] * xr[i * C + c];
        yj[c] = acc;
      }
    }
  }
}

}  // namespace elm::cpu
