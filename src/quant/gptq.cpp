#include "quant/gptq.h"

#include <cmath>

#include "core/error.h"

namespace elm {

namespace {

// In place: the lower Cholesky factor L of the symmetric positive definite A [n, n] (A = L L^T);
// the upper triangle is left as it was. False when A is not positive definite.
bool cholesky_lower(std::vector<double>& A, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double* aj = A.data() + j * n;
    double d = aj[j];
    for (int64_t k = 0; k < j; ++k) d -= aj[k] * aj[k];
    if (!(d > 0)) return false;
    aj[j] = std::sqrt(d);
    for (int64_t i = j + 1; i < n; ++i) {
      double* ai = A.data() + i * n;
      double s = ai[j];
      for (int64_t k = 0; k < j; ++k) s -= ai[k] * aj[k];
      ai[j] = s / aj[j];
    }
  }
  return true;
}

}  // namespace

std::vector<float> gptq_factor(const float* second_moment, int64_t K) {
  std::vector<double> H(size_t(K * K));
  double mean_diag = 0;
  for (int64_t i = 0; i < K; ++i) mean_diag += second_moment[i * K + i];
  mean_diag /= double(K);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) H[size_t(i * K + j)] = second_moment[i * K + j];
  for (int64_t i = 0; i < K; ++i) {
    double& d = H[size_t(i * K + i)];
    if (!(d > 0)) d = mean_diag > 0 ? mean_diag : 1.0;  // a column that never saw activation
    d += 0.01 * (mean_diag > 0 ? mean_diag : 1.0);
  }
  ELM_CHECK(cholesky_lower(H, K), "calibration: the activations' second moment is not positive definite");
  // H^-1 = L^-T L^-1. Li = L^-1 row by row (row i: (e_i - sum_k<i L_ik Li_k) / L_ii), then the lower
  // triangle of Li^T Li as a sum of outer products of Li's rows (every inner loop runs along a row).
  std::vector<double> Li(size_t(K * K), 0.0);
  for (int64_t i = 0; i < K; ++i) {
    double* li = Li.data() + i * K;
    li[i] = 1.0;
    for (int64_t k = 0; k < i; ++k) {
      const double l = H[size_t(i * K + k)];
      const double* lk = Li.data() + k * K;
      for (int64_t c = 0; c <= k; ++c) li[c] -= l * lk[c];
    }
    const double inv = 1.0 / H[size_t(i * K + i)];
    for (int64_t c = 0; c <= i; ++c) li[c] *= inv;
  }
  std::vector<double> Hinv(size_t(K * K), 0.0);
  for (int64_t k = 0; k < K; ++k) {
    const double* lk = Li.data() + k * K;
    for (int64_t i = 0; i <= k; ++i) {
      double* hi = Hinv.data() + i * K;
      const double a = lk[i];
      for (int64_t j = 0; j <= i; ++j) hi[j] += a * lk[j];
    }
  }
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < i; ++j) Hinv[size_t(j * K + i)] = Hinv[size_t(i * K + j)];
  // Upper factor of H^-1 = U^T U: U = L'^T with L' the lower factor.
  ELM_CHECK(cholesky_lower(Hinv, K), "calibration: the inverse second moment is not positive definite");
  std::vector<float> U(size_t(K * K), 0.f);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = i; j < K; ++j) U[size_t(i * K + j)] = float(Hinv[size_t(j * K + i)]);
  return U;
}

}  // namespace elm
