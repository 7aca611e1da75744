// Activation statistics for calibrated quantization (`elm convert --calib text.txt`).
//
// The model runs in float over calibration text and every matmul weight W [N, K] gets the mean square
// of each of its K input columns, E[a_k^2]. A row's output error is sum_k (w_k - q_k) a_k; its expected
// square is, to a diagonal approximation, sum_k (w_k - q_k)^2 E[a_k^2]. Quantizing with those column
// weights (quantize_matrix's `column_weights`) spends the precision of every group on the columns that
// carry large activations, which is what the model's outputs feel (llama.cpp calls such statistics an
// importance matrix). Inputs of at most CalibrationOptions::max_gptq_cols columns also get their full
// second moment E[a a^T], with which quantization rounds by GPTQ (quant/gptq.h): each column's rounding
// error is compensated on the columns after it, minimizing sum over rows of e^T E[a a^T] e.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "quant/quantize.h"

namespace elm {

struct Model;

struct ActivationStats {
  std::map<std::string, std::vector<float>> mean_square;  // weight tensor name -> E[a_k^2], one per column
  // weight tensor name -> E[a a^T] [cols, cols], row-major; weights that read one input share it
  std::map<std::string, std::shared_ptr<const std::vector<float>>> second_moment;
  int64_t tokens = 0;                                      // tokens the statistics were taken over

  // The column weights for quantizing `tensor` (a matrix of `cols` columns); null when there are none.
  const float* column_weights(const std::string& tensor, int64_t cols) const;
  // Everything quantize_matrix can use for `tensor`: column weights, and GPTQ's factor when the
  // second moment is known (computed on first use, then shared by the weights reading that input).
  MatrixCalibration for_matrix(const std::string& tensor, int64_t cols) const;

 private:
  mutable std::map<const std::vector<float>*, std::vector<float>> factors_;
};

struct CalibrationOptions {
  int ctx = 512;           // tokens per chunk, each read from an empty cache (BOS first when the model has one)
  int32_t bos = -1;        // >= 0: the first token of every chunk becomes this id
  int64_t max_tokens = 16384;
  // Inputs of more columns get only the mean squares (a second moment's factorization costs cols^3
  // operations); 0 disables GPTQ. So do inputs past the memory budget for the second moments' sums
  // (cols^2 doubles each), in graph order.
  int64_t max_gptq_cols = 4096;
  int64_t gptq_budget_bytes = int64_t(2) << 30;
  int threads = 0;
  std::function<void(int64_t done, int64_t total)> progress;
};

// Calibration text the model writes itself (`elm convert --calib self`): `sequences` samples of
// `length` tokens, each starting with the model's BOS (else its first EOS, else token 0) and drawn at
// temperature 1 from the full distribution, all sequences decoded in one batch. Concatenated, so that
// chunks of `length` tokens are the samples.
std::vector<int32_t> sample_calibration_tokens(std::shared_ptr<const Model> model, int sequences, int length,
                                               uint64_t seed, int threads,
                                               const std::function<void(int64_t done, int64_t total)>& progress = {});

// Runs `model` over `tokens` in chunks and returns the statistics of every weight a matmul reads.
// Throws elm::Error when there are fewer than two tokens.
ActivationStats collect_activation_stats(std::shared_ptr<const Model> model, const std::vector<int32_t>& tokens,
                                         const CalibrationOptions& options = {});

}  // namespace elm
