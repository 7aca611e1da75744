// GaussianTopK: Gemma 3n's activation sparsity. Instead of sorting each row to find its top values,
// the row is modelled as a normal distribution and everything below the wanted quantile
// (mean + std_mult * std) is cut to zero; what survives is shifted down by the cutoff.
#include <algorithm>
#include <cmath>

#include "backend/cpu/kernels.h"

namespace elm::cpu {

void gaussian_topk(const float* x, int64_t R, int64_t C, float std_mult, float* y) {
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * C;
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += xr[c];
    const double mean = sum / double(C);
    double var = 0;  // population variance (torch.std(unbiased=False)), two-pass for accuracy
    for (int64_t c = 0; c < C; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    const float std = float(std::sqrt(var / double(C)));
    const float cutoff = float(mean) + std * std_mult;
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = std::max(xr[c] - cutoff, 0.f);
  }
}

}  // namespace elm::cpu
