// Which cache slots a query sees: shared by the attention kernels (attention.cu, attention_mma.cu).
#pragma once
#include "backend/cuda/kernels.h"

namespace elm::cuda {

// Masks follow the cache's pos[] (which position each slot holds): a key is visible when
// 0 <= p_k <= p_q and (window == 0 or p_q - p_k < window), exactly the CPU's rule.
__device__ __forceinline__ bool key_visible(int32_t pk, int32_t pq, int window) {
  return pk >= 0 && pk <= pq && (window == 0 || pq - pk < window);
}

// Slots [lo, hi) that may hold keys visible to queries at positions pq_min..pq_max.
__device__ __forceinline__ void key_range(const KvView& kv, int32_t pq_min, int32_t pq_max, int window, int& lo,
                                          int& hi) {
  if (kv.ring) {
    lo = 0, hi = kv.cap;
  } else {
    hi = min(pq_max + 1, kv.cap);
    lo = window > 0 ? max(0, pq_min - window + 1) : 0;
  }
}

// The positions of a prefill block's ROWS queries q0.. (qpos[r]: -1 past the step's T tokens) and their
// least and greatest (range[0], range[1]), in shared memory. Every thread of the block calls it; qpos
// is ready when it returns, range after the caller's next __syncthreads().
template <int ROWS>
__device__ __forceinline__ void query_positions(const int32_t* positions, int q0, int T, int32_t* qpos,
                                                int32_t* range) {
  if (threadIdx.x < ROWS) qpos[threadIdx.x] = q0 + int(threadIdx.x) < T ? positions[q0 + threadIdx.x] : -1;
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t mn = INT32_MAX, mx = -1;
    for (int r = 0; r < ROWS; ++r)
      if (qpos[r] >= 0) mn = min(mn, qpos[r]), mx = max(mx, qpos[r]);
    range[0] = mn, range[1] = mx;
  }
}

}  // namespace elm::cuda
