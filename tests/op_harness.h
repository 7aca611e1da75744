// Runs single ops through the real executor and CPU backend. Inputs enter the graph the way model
// activations do: x = embed(table, ids) with ids 0..T-1, so row t of x is row t of a random table.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "core/tensor.h"
#include "graph/builder.h"
#include "runtime/executor.h"
#include "runtime/model.h"

namespace elm::test {

std::vector<float> random_vector(size_t n, uint32_t seed, float scale = 1.0f);

// |got - want| <= tol * (1 + |want|) elementwise (a test failure naming the first index otherwise).
void expect_close(const float* got, const std::vector<double>& want, double tol, const std::string& what = "");
void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol);

struct OpHarness {
  std::shared_ptr<Model> model = std::make_shared<Model>();
  GraphBuilder b{model->weights};

  // A float32 weight [rows, cols] (or a vector when rows == 0) with the given values.
  NodeId weight(const std::string& name, int64_t rows, int64_t cols, const std::vector<float>& values);
  // x [T, cols] from a random table: returns the node and fills `values` with x row-major.
  NodeId input(const std::string& name, int64_t T, int64_t cols, std::vector<float>& values, uint32_t seed);
  // Finishes the graph with `out` as the output (through output_rows) and runs one step over tokens
  // 0..T-1 at positions pos0.., sequence 0; returns out [T, cols].
  std::vector<float> run(NodeId out, int64_t T, int32_t pos0 = 0, RuntimeConfig cfg = {});
};

}  // namespace elm::test
