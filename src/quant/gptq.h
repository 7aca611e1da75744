// GPTQ (Frantar et al., 2022): rounding a weight row column by column, each column's rounding error
// compensated on the columns not rounded yet, so that the row's output error on the calibration
// activations, e^T H e with H = E[a a^T], is what gets minimized rather than the weight error e^T e.
//
// With U the upper Cholesky factor of H^-1 (H^-1 = U^T U), rounding column j to q_j and adding
// -(w_j - q_j) / U_jj * U_j,k to every later column k is the optimal update of the remaining columns
// for that rounding (the Optimal Brain Surgeon step, in the Cholesky form GPTQ showed stable).
#pragma once
#include <cstdint>
#include <vector>

namespace elm {

// U [K, K] row-major (zeros below the diagonal) for the second moment H [K, K] (row-major, symmetric)
// of a matmul's input. Damps H by 1% of its mean diagonal (and columns that never saw activation get a
// unit diagonal) so the factorization exists. Computed in double.
std::vector<float> gptq_factor(const float* second_moment, int64_t K);

// Compensates the rounding of column j of one row: w[k] -= (w[j] - q) / U_jj * U_jk for k > j.
inline void gptq_spread_error(float* w, const float* U, int64_t K, int64_t j, float rounded) {
  const float* u = U + j * K;
  const float e = (w[j] - rounded) / u[j];
  for (int64_t k = j + 1; k < K; ++k) w[k] -= e * u[k];
}

}  // namespace elm
