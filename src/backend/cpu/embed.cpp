#include "backend/cpu/kernels.h"
#include "core/error.h"

namespace elm::cpu {

namespace {

template <class Row>
void lookup(int64_t V, int64_t C, const int32_t* ids, int64_t T, float* out, Row&& row) {
  for (int64_t t = 0; t < T; ++t) {
    ELM_CHECK(ids[t] >= 0 && ids[t] < V, "token id ", ids[t], " is outside the vocabulary (", V, " tokens)");
    row(ids[t], out + t * C);
  }
}

}  // namespace

void embed(const TensorView& table, const int32_t* ids, int64_t T, float* out) {
  lookup(table.rows(), table.cols(), ids, T, out, [&](int64_t r, float* y) { dequantize_row(table, r, y); });
}

void embed(const PackedQ& table, const int32_t* ids, int64_t T, float* out) {
  lookup(table.n, table.k, ids, T, out, [&](int64_t r, float* y) { unpack_row(table, r, y); });
}

}  // namespace elm::cpu
