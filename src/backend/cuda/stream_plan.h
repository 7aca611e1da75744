// How a streamed decode product (gemv_stream.cu) tiles its weights into shared-memory stages: rows per
// warp, slices per row, the bytes of each stage and the ring's depth. Pure C++ (no CUDA), so the plans'
// invariants are unit-tested on machines without a GPU (tests/test_cuda_stream_plan.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace elm::cuda {

constexpr int kStreamWarps = 8;      // consumer warps of a block (plus one producer warp)
constexpr int kStreamMaxStages = 8;  // ring slots

// The product: y_i = x w_i^T for up to 3 weights of `rows[i]` rows sharing x, or a gated pair
// (2 weights of rows[0] rows, one output unit per pair of rows). All weights share type and K.
struct StreamShape {
  DType type = DType::Q4;  // Q8, Q4 or Q4M
  bool gated = false;
  int tokens = 1;          // NT of the kernel (1, 2, 4 or 8)
  int K = 0, group = 32;
  bool scale_f32 = false;
  int n = 1;               // weights (gated: 2)
  int64_t rows[3] = {};
};

struct StreamPlan {
  int rpw = 0;                    // output units per consumer warp in a tile (kStreamWarps * rpw a tile)
  int slices = 0, ks = 0;         // slices per row and values per slice (rpw == 1 when slices > 1)
  int stages = 0;                 // ring depth
  uint32_t q_seg = 0, s_seg = 0;  // bytes of one row's slice of quants / of scales (and of mins)
  uint32_t stage_bytes = 0;       // one ring slot: R weights x tile units x (quants + scale planes)
  uint32_t x_bytes = 0;           // shared memory before the ring (x staged as int8 blocks), 128-aligned
  int64_t toffs[4] = {};          // tile index ranges of the weights (gated: one range)
  int64_t tiles = 0;
  size_t smem_bytes() const { return x_bytes + size_t(stages) * stage_bytes; }
};

// Shared memory of x staged as int8 blocks for NT tokens of K values, in both decode kernels (gemv_x.cuh's
// stage_xq: 32 bytes of quants and a float2 per 32-value block and token, and 64 bytes of bank offset).
constexpr size_t xq_bytes(int NT, int K) { return size_t(NT) * size_t(K / 32) * 40 + 64; }

// Static shared memory of the kernel besides the dynamic part (RMSNorm scratch and the mbarriers).
constexpr size_t kStreamStaticSmem = 8 * kStreamWarps * 4 + 8 * 4 + 2 * kStreamMaxStages * 8;

// Plans the product for `grid_blocks` blocks with about `stage_target` bytes of quants per warp and
// stage; false when its slices cannot be 16-byte multiples (bulk copies) or a ring of two stages does
// not fit beside x.
bool plan_stream(const StreamShape& s, int grid_blocks, int stage_target, StreamPlan& p);

}  // namespace elm::cuda
