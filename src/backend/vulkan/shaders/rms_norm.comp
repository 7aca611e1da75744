#version 450
// RMSNorm over runs of G columns: one workgroup per (group, row). y = x / sqrt(mean(x^2) + eps) * w
// (times 1 + w when add_one; no weight when has_w is 0).
#include "common.glsl"
#include "reduce.glsl"

layout(std430, binding = B_X) readonly buffer XS { float X[]; };
layout(std430, binding = B_Y) writeonly buffer YS { float Y[]; };
layout(std430, binding = B_V0) readonly buffer WS { float NW[]; };

layout(push_constant) uniform Params {
  uint C, G, has_w, add_one;
  float eps;
} p;

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint base = gl_WorkGroupID.y * p.C + gl_WorkGroupID.x * p.G;
  float ss = 0.0;
  for (uint c = tid; c < p.G; c += WG) ss += X[base + c] * X[base + c];
  const float inv = 1.0 / sqrt(wg_sum(ss) / float(p.G) + p.eps);
  for (uint c = tid; c < p.G; c += WG) {
    float v = X[base + c] * inv;
    if (p.has_w != 0u) v *= p.add_one != 0u ? 1.0 + NW[c] : NW[c];
    Y[base + c] = v;
  }
}
