// Lowering of a CUDA segment's nodes into kernel steps, fusing the patterns that decoding launches
// most often. Each fused step replaces several graph nodes whose intermediate values never reach
// memory, so a Llama layer is five matrix launches and one attention pair instead of sixteen launches:
//
//   norm prologue  RmsNorm(x) read only by MatMuls        -> each product normalizes x itself
//   siblings       MatMuls of one x (q, k, v)             -> one launch over all their rows
//   gated          Mul(Act(MatMul(x, Wg)), MatMul(x, Wu)) -> one launch writing act(g) * u
//   residual       Add(r, MatMul(x, W))                   -> the product's epilogue adds r
//   rope           Attention(Rope(q), Rope(k), v)         -> the cache write and the attention kernel rotate
//
// Pure C++ (no CUDA), so the plans are unit-tested on machines without a GPU.
#pragma once
#include <span>
#include <vector>

#include "core/weight_store.h"
#include "graph/graph.h"

namespace elm::cuda {

struct LowerOptions {
  bool fuse = true;  // false: one step per node (for testing the fused kernels against the plain ones)
};

// One product of a Matmul step.
struct MatmulOut {
  int32_t matmul = -1;    // the MatMul node
  int32_t value = -1;     // the node whose value the product writes: the MatMul, or the fused Add
  int32_t residual = -1;  // value added in the epilogue (fused Add), -1 when none
};

struct Step {
  enum class Kind { Op, Matmul, Attention };
  Kind kind = Kind::Op;
  int32_t node = -1;  // Op: the node it executes; Attention: the Attention node; Matmul: the last node covered

  // Matmul
  int32_t x = -1;     // input activation (the norm's input when norm >= 0)
  int32_t norm = -1;  // RmsNorm node folded into the prologue
  std::vector<MatmulOut> outs;
  Op gate = Op::Count;    // Silu / Gelu / GeluTanh: outs[0] is the gate, outs[1] the up product
  int32_t gated = -1;     // the Mul node receiving act(gate) * up

  // Attention: Rope nodes folded into the cache write (k) and the attention (q); -1 when not fused
  int32_t rope_q = -1, rope_k = -1;

  std::vector<int32_t> reads;   // activation values the step reads (for buffer lifetimes)
  std::vector<int32_t> writes;  // values it materializes
};

// Steps in execution order. `outputs` are values read after the segment (they are never fused away).
std::vector<Step> lower(const Graph& g, const WeightStore& w, std::span<const int32_t> nodes,
                        std::span<const int32_t> outputs, const LowerOptions& options = {});

}  // namespace elm::cuda
