// Float-weight matmul dispatch (kernels in fgemm_<isa>.cpp).
#include "backend/cpu/fgemm.h"

#include <vector>

namespace elm::cpu {

namespace {
// Rows up to which the gemv kernel reads weights in place (4 rows a pass). Its sums run in another
// order than the gemm's, so a row's result would depend on how many rows the step has: up to 16 rows
// (decode, speculative verification of up to 15 drafts) every row is computed as in a one-row step,
// which keeps greedy speculative decoding identical to plain decoding on float weights too.
constexpr int64_t kGemvRows = 16;
constexpr int64_t kPanel = 16;    // output columns per gemm panel

// BF16 weights against x rounded to bf16 once for all threads (as pairs, gemm_bf16dot's input).
void matmul_bf16dot(const float* x, int64_t R, const TensorView& w, const FKernels& fk, const float* bias, float* y,
                    ThreadPool& pool) {
  const int64_t N = w.rows(), K = w.cols(), pairs = (K + 1) / 2;
  thread_local std::vector<uint32_t> xp;
  xp.resize(size_t(R * pairs));
  // A plain pointer for the workers: naming the thread_local inside a lambda would give each worker
  // its own (empty) buffer.
  uint32_t* xb = xp.data();
  const auto rows = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) fk.to_bf16(x + r * K, K, xb + r * pairs);
  };
  if (R * K >= (int64_t(1) << 16)) pool.parallel_for(R, rows);
  else rows(0, R);
  const auto* wb = static_cast<const uint16_t*>(w.data);
  pool.parallel_for_dynamic((N + kPanel - 1) / kPanel, [&](int64_t p0, int64_t p1) {
    fk.gemm_bf16dot(wb, N, K, xb, R, p0, p1, bias, y, N);
  }, 2);
}
}  // namespace

const FKernels* fkernels(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx512: return cpu_features().avx512bf16 ? &kFKernelsAvx512Bf16 : &kFKernelsAvx512;
    case Isa::Avx2: return &kFKernelsAvx2;
#endif
#if defined(__aarch64__)
    case Isa::Neon: return &kFKernelsNeon;
#endif
    default: return nullptr;
  }
}

void matmul_float(const float* x, int64_t R, const TensorView& w, const FKernels& fk, const float* bias, float* y,
                  ThreadPool& pool, DType act) {
  const int64_t N = w.rows(), K = w.cols();
  if (R <= kGemvRows) {
    pool.parallel_for_dynamic(N, [&](int64_t n0, int64_t n1) { fk.gemv(w.dtype, w.data, K, x, R, n0, n1, bias, y, N); },
                              64);
    return;
  }
  if (act == DType::BF16 && w.dtype == DType::BF16 && fk.gemm_bf16dot) return matmul_bf16dot(x, R, w, fk, bias, y, pool);
  const int64_t panels = (N + kPanel - 1) / kPanel;
  pool.parallel_for_dynamic(panels, [&](int64_t p0, int64_t p1) {
    fk.gemm(w.dtype, w.data, N, K, x, R, p0, p1, bias, y, N);
  }, 2);
}

}  // namespace elm::cpu
