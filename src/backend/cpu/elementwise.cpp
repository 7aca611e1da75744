#include <cmath>

#include "backend/cpu/kernels.h"

namespace elm::cpu {

void unary(Unary f, const float* x, int64_t n, float* y) {
  switch (f) {
    case Unary::Silu:
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i]));
      return;
    case Unary::Gelu:
      for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * float(M_SQRT1_2)));
      return;
    case Unary::GeluTanh: {
      const float k = float(std::sqrt(2.0 / M_PI));
      for (int64_t i = 0; i < n; ++i) {
        const float v = x[i];
        y[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
      }
      return;
    }
    case Unary::Sigmoid:
      for (int64_t i = 0; i < n; ++i) y[i] = 1.0f / (1.0f + std::exp(-x[i]));
      return;
    case Unary::Softplus:  // torch's threshold: linear above 20
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 20.f ? x[i] : std::log1p(std::exp(x[i]));
      return;
    case Unary::Tanh:
      for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
      return;
  }
}

void scale(const float* x, int64_t n, float s, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s;
}

void softcap(const float* x, int64_t n, float cap, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = cap * std::tanh(x[i] / cap);
}

void add(const float* a, const float* b, int64_t R, int64_t C, bool bb, float* y) {
  for (int64_t r = 0; r < R; ++r) {
    const float* br = bb ? b : b + r * C;
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = a[r * C + c] + br[c];
  }
}

void mul(const float* a, const float* b, int64_t R, int64_t C, bool bb, float* y) {
  for (int64_t r = 0; r < R; ++r) {
    const float* br = bb ? b : b + r * C;
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = a[r * C + c] * br[c];
  }
}

}  // namespace elm::cpu
