// RoPE for one element, shared by the rope kernel and the attention kernels that rotate q and k as they
// read them (so the rotated copies never go to memory).
#pragma once
#include "backend/cuda/kernels.h"

namespace elm::cuda {

// Element d of one head (head points at its first element) rotated for position pos (ops.def Rope).
// Like the CPU: angle = pos * inv_freq[i] in float32, then cos/sin (CUDA's full-precision sincosf, within
// 2 ulp of the CPU's double cos/sin rounded to float), times attn_factor.
__device__ __forceinline__ float rope_value(const float* head, int d, int32_t pos, const RopeArgs& r) {
  if (!r.inv_freq || d >= 2 * r.F) return head[d];
  int i, partner;
  bool first;
  if (r.pairs) {
    i = d >> 1;
    first = (d & 1) == 0;
    partner = first ? d + 1 : d - 1;
  } else if (d < r.F) {
    i = d, first = true, partner = d + r.F;
  } else {
    i = d - r.F, first = false, partner = d - r.F;
  }
  const float angle = float(pos) * r.inv_freq[i];
  float sn, cs;
  sincosf(angle, &sn, &cs);
  const float c = cs * r.attn_factor, s = sn * r.attn_factor;
  const float self = head[d], other = head[partner];
  return first ? self * c - other * s : self * c + other * s;
}

}  // namespace elm::cuda
