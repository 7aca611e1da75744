// Float-weight matmul dispatch (kernels in fgemm_<isa>.cpp).
#include "backend/cpu/fgemm.h"

namespace elm::cpu {

namespace {
// Rows up to which the gemv kernel reads weights in place (4 rows a pass). Its sums run in another
// order than the gemm's, so a row's result would depend on how many rows the step has: up to 16 rows
// (decode, speculative verification of up to 15 drafts) every row is computed as in a one-row step,
// which keeps greedy speculative decoding identical to plain decoding on float weights too.
constexpr int64_t kGemvRows = 16;
constexpr int64_t kPanel = 16;    // output columns per gemm panel
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
                  ThreadPool& pool) {
  const int64_t N = w.rows(), K = w.cols();
  if (R <= kGemvRows) {
    pool.parallel_for_dynamic(N, [&](int64_t n0, int64_t n1) { fk.gemv(w.dtype, w.data, K, x, R, n0, n1, bias, y, N); },
                              64);
    return;
  }
  const int64_t panels = (N + kPanel - 1) / kPanel;
  pool.parallel_for_dynamic(panels, [&](int64_t p0, int64_t p1) {
    fk.gemm(w.dtype, w.data, N, K, x, R, p0, p1, bias, y, N);
  }, 2);
}

}  // namespace elm::cpu
