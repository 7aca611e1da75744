#include "backend/cuda/stream_plan.h"

#include <algorithm>

namespace elm::cuda {

bool plan_stream(const StreamShape& s, int grid_blocks, int stage_target, StreamPlan& p) {
  p = StreamPlan{};
  const int K = s.K, group = s.group, sbytes = s.scale_f32 ? 4 : 2, R = s.gated ? 2 : 1;
  if (!is_quantized(s.type) || K <= 0 || group <= 0 || K % group != 0 || group % 32 != 0) return false;
  const int planes = s.type == DType::Q4M ? 2 : 1;
  const int64_t row_q = s.type == DType::Q8 ? K : K / 2;
  const int64_t row_s = int64_t(K / group) * sbytes;
  int64_t units = 0;
  for (int i = 0; i < (s.gated ? 1 : s.n); ++i) units += s.rows[i];
  if (R * row_q <= stage_target) {
    p.slices = 1, p.ks = K;
    // Several rows per warp for short rows, but tiles enough to give every block two or more.
    p.rpw = int(std::min<int64_t>(8, stage_target / (R * row_q)));
    while (p.rpw > 1 && (units + int64_t(kStreamWarps) * p.rpw - 1) / (int64_t(kStreamWarps) * p.rpw) < 2 * grid_blocks)
      --p.rpw;
    // Tiles of whole rows start on 16-byte boundaries in every plane (kStreamWarps rows of even byte
    // counts); the last tile's scales are copied rounded up to 16 bytes (the device copy is padded).
    if (int64_t(kStreamWarps) * row_s % 16 != 0) return false;
  } else {
    // Rows in slices, each a 16-byte multiple in every plane.
    p.rpw = 1;
    for (int n = int((R * row_q + stage_target - 1) / stage_target); n <= K / 32 && p.slices == 0; ++n) {
      const int ks = K / n;
      if (K % n == 0 && ks % group == 0 && ks % 32 == 0 && (ks / group) * sbytes % 16 == 0) p.slices = n;
    }
    if (p.slices == 0) return false;
    p.ks = K / p.slices;
  }
  const int tu = kStreamWarps * p.rpw;
  p.q_seg = uint32_t(s.type == DType::Q8 ? p.ks : p.ks / 2);
  p.s_seg = uint32_t(p.ks / group * sbytes);
  p.stage_bytes = uint32_t(R * tu) * (p.q_seg + uint32_t(planes) * p.s_seg);
  p.x_bytes = uint32_t((xq_bytes(s.tokens, K) + 127) / 128 * 128);
  // Two blocks per SM when the ring is deep enough that way (227 KiB of shared memory per SM, 1 KiB of
  // it reserved per block), else the whole SM.
  const size_t half = 113 * 1024 - 1024 - kStreamStaticSmem, whole = 227 * 1024 - kStreamStaticSmem;
  auto depth = [&](size_t budget) {
    return budget > p.x_bytes ? int(std::min<size_t>(kStreamMaxStages, (budget - p.x_bytes) / p.stage_bytes)) : 0;
  };
  p.stages = depth(half) >= 3 ? depth(half) : depth(whole);
  if (p.stages < 2) return false;
  if (s.gated) {
    p.toffs[1] = p.tiles = (units + tu - 1) / tu;
  } else {
    for (int i = 0; i < s.n; ++i) p.toffs[i + 1] = p.toffs[i] + (s.rows[i] + tu - 1) / tu;
    p.tiles = p.toffs[s.n];
  }
  return true;
}

}  // namespace elm::cuda
