#include <algorithm>
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

namespace elm::cpu {

void rms_rescale(const float* x, int64_t R, int64_t C, const float* ref, int64_t ref_cols, float floor, float* y) {
  auto mean_square = [](const float* v, int64_t n) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(v[i]) * v[i];
    return float(ss / double(n));
  };
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * C;
    const float target = std::sqrt(mean_square(ref + r * ref_cols, ref_cols));
    const float current = std::sqrt(std::max(mean_square(xr, C), floor));
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = xr[c] * target / current;
  }
}

}  // namespace elm::cpu
