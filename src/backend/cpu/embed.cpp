#include "backend/cpu/kernels.h"
#include "core/error.h"

namespace elm::cpu {

void embed(const TensorView& table, const int32_t* ids, int64_t T, float* out) {
  const int64_t V = table.rows(), C = table.cols();
  for (int64_t t = 0; t < T; ++t) {
    ELM_CHECK(ids[t] >= 0 && ids[t] < V, "token id ", ids[t], " is outside the vocabulary (", V, " tokens)");
    dequantize_row(table, ids[t], out + t * C);
  }
}

}  // namespace elm::cpu
