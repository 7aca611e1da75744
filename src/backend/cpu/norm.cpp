#include <cmath>

#include "backend/cpu/kernels.h"

namespace elm::cpu {

void rms_norm(const float* x, int64_t R, int64_t C, const float* w, int64_t group, float eps, bool add_one, float* y) {
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t g0 = 0; g0 < C; g0 += group) {
      const float* xr = x + r * C + g0;
      float* yr = y + r * C + g0;
      double ss = 0;  // accumulate in double: the mean of squares is the precision-sensitive part
      for (int64_t c = 0; c < group; ++c) ss += double(xr[c]) * xr[c];
      const float inv = 1.0f / std::sqrt(float(ss / double(group)) + eps);
      for (int64_t c = 0; c < group; ++c) {
        float v = xr[c] * inv;
        if (w) v *= add_one ? 1.0f + w[c] : w[c];
        yr[c] = v;
      }
    }
  }
}

}  // namespace elm::cpu
