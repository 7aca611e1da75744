// Runs tiny graphs on the CUDA backend and on the CPU reference and compares them (the backend-ops
// suite). Inputs enter like model activations: x = embed(table, ids) with ids 0..T-1.
#pragma once
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "graph/builder.h"
#include "quant/quantize.h"
#include "runtime/executor.h"
#include "runtime/model.h"

namespace elm::test {

// Whether a CUDA device is usable here (the CUDA tests skip otherwise).
bool cuda_available();

#define ELM_REQUIRE_CUDA()                                                         \
  do {                                                                              \
    if (!::elm::test::cuda_available()) GTEST_SKIP() << "no CUDA device here";      \
  } while (0)

struct CudaCase {
  std::shared_ptr<Model> model = std::make_shared<Model>();
  GraphBuilder b{model->weights};
  uint32_t seed = 1;

  // A random weight [rows, cols] (a vector when rows == 0) stored as `type`.
  NodeId weight(const std::string& name, int64_t rows, int64_t cols, QuantSpec type = {DType::F32, 0, DType::F16},
                float scale = 1.0f);
  // An activation [T, cols] with random values.
  NodeId input(const std::string& name, int64_t T, int64_t cols, float scale = 1.0f);
  // Finishes the graph with `out` (through output_rows).
  void finish(NodeId out);
};

// The same model on CUDA (+ CPU fallback) and on the CPU alone, fed the same batches.
struct CudaPair {
  std::unique_ptr<Executor> gpu, cpu;
  // The CPU reference multiplies float activations by the (de)quantized weights exactly; with
  // cpu_kernels it runs the CPU's own kernels instead, which multiply quantized weights by int8
  // activations quantized as the CUDA gemv quantizes them (32-value blocks, d = amax / 127).
  CudaPair(std::shared_ptr<const Model> model, RuntimeConfig cfg, bool cpu_kernels = false);
  // Every compute node of the graph runs on the CUDA backend.
  void expect_all_on_cuda() const;
  // Runs the batch on both; returns max |gpu - cpu| / max |cpu| over the outputs.
  double step(const Batch& b);
};

// A batch of tokens 0..T-1 (or `ids`) at positions pos0.., sequence seq, every output requested.
Batch make_batch(int64_t T, int32_t pos0 = 0, int32_t seq = 0, int32_t id0 = 0);

}  // namespace elm::test
