#include <vector>

#include "backend/cpu/kernels.h"

namespace elm::cpu {

void matmul_ref(const float* x, int64_t R, const TensorView& w, const float* bias, float* y, ThreadPool& pool) {
  const int64_t N = w.rows(), K = w.cols();
  pool.parallel_for(
      N,
      [&](int64_t n0, int64_t n1) {
        std::vector<float> row(static_cast<size_t>(K));
        for (int64_t n = n0; n < n1; ++n) {
          dequantize_row(w, n, row.data());
          for (int64_t r = 0; r < R; ++r) {
            const float* xr = x + r * K;
            float acc = 0;
            for (int64_t k = 0; k < K; ++k) acc += xr[k] * row[size_t(k)];
            y[r * N + n] = acc + (bias ? bias[n] : 0.f);
          }
        }
      },
      16);
}

}  // namespace elm::cpu
