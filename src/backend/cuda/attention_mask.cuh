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

}  // namespace elm::cuda
