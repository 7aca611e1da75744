#version 450
// IDS[r] = argmax of row r of X [R, C], the lowest column among equal maxima (the CPU's argmax,
// runtime/sampler.cpp): greedy decoding reads back R ids instead of R rows of logits. One workgroup a
// row; invocation i scans columns i, i + WG, ... (keeping its first maximum), then a tree in shared
// memory keeps the larger value, or the lower column of equal ones. (Rows holding NaN give some
// column, as on the CPU, not necessarily the same one.)
#include "common.glsl"

layout(std430, binding = B_X) readonly buffer XS { float X[]; };
layout(std430, binding = B_Y) writeonly buffer IS { int IDS[]; };

layout(push_constant) uniform Params { uint C; } p;

shared float best_v[WG];
shared uint best_i[WG];

void main() {
  const uint tid = gl_LocalInvocationID.x, r = gl_WorkGroupID.x;
  const uint none = 0xffffffffu;
  float v = 0.0;
  uint at = none;
  for (uint c = tid; c < p.C; c += WG) {
    const float x = X[r * p.C + c];
    if (at == none || x > v) v = x, at = c;
  }
  best_v[tid] = v;
  best_i[tid] = at;
  barrier();
  for (uint s = WG / 2u; s > 0u; s >>= 1) {
    if (tid < s) {
      const float ov = best_v[tid + s];
      const uint oi = best_i[tid + s], mi = best_i[tid];
      if (oi != none && (mi == none || ov > best_v[tid] || (ov == best_v[tid] && oi < mi)))
        best_v[tid] = ov, best_i[tid] = oi;
    }
    barrier();
  }
  if (tid == 0u) IDS[r] = int(best_i[0] == none ? 0u : best_i[0]);  // none: C == 0
}
