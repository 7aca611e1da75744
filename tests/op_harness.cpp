#include "op_harness.h"

#include <cmath>

namespace elm::test {

std::vector<float> random_vector(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void expect_close(const float* got, const std::vector<double>& want, double tol, const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << what << " at " << i;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  expect_close(got.data(), want, tol);
}

NodeId OpHarness::weight(const std::string& name, int64_t rows, int64_t cols, const std::vector<float>& values) {
  Shape s = rows ? Shape{rows, cols} : Shape{cols};
  model->weights.add_owned(name, s, values);
  return b.weight(name, s);
}

NodeId OpHarness::input(const std::string& name, int64_t T, int64_t cols, std::vector<float>& values, uint32_t seed) {
  values = random_vector(size_t(T * cols), seed);
  NodeId table = weight(name, T, cols, values);
  return b.embed(table, b.token_ids());
}

std::vector<float> OpHarness::run(NodeId out, int64_t T, int32_t pos0, RuntimeConfig cfg) {
  const int64_t cols = b.cols(out);
  model->graph = b.finish(b.output_rows(out));
  model->info.vocab_size = 1 << 20;  // token ids index the input tables, not a vocabulary
  cfg.threads = 2;
  Executor ex(model, cfg, std::vector<std::string>{"cpu"});
  Batch batch;
  for (int64_t t = 0; t < T; ++t) batch.add(int32_t(t), pos0 + int32_t(t), 0, true);
  const HostTensor& h = ex.step(batch);
  EXPECT_EQ(h.rows, T);
  EXPECT_EQ(h.cols, cols);
  return h.data;
}

}  // namespace elm::test
