// Causal depthwise conv1d over one sequence's tokens, continuing from the inputs it saw before.
#include <cstring>
#include <vector>

#include "backend/cpu/kernels.h"

namespace elm::cpu {

void causal_conv1d(const float* x, const int64_t* rows, int64_t n, int64_t C, const float* w, int64_t K, float* window,
                   float* y) {
  // hist [K - 1 + n, C]: the remembered inputs, then this run's inputs, oldest first.
  std::vector<float> hist(size_t((K - 1 + n) * C));
  if (K > 1) std::memcpy(hist.data(), window, size_t((K - 1) * C) * 4);
  for (int64_t t = 0; t < n; ++t) std::memcpy(hist.data() + (K - 1 + t) * C, x + rows[t] * C, size_t(C) * 4);
  for (int64_t t = 0; t < n; ++t) {
    float* yt = y + rows[t] * C;
    for (int64_t c = 0; c < C; ++c) {
      float acc = 0;
      for (int64_t j = 0; j < K; ++j) acc += w[c * K + j] * hist[size_t((t + j) * C + c)];
      yt[c] = acc;
    }
  }
  if (K > 1) std::memcpy(window, hist.data() + n * C, size_t((K - 1) * C) * 4);
}

}  // namespace elm::cpu
