#version 450
// Rotary embedding: y = x with the first 2F dims of every head rotated by pos * inv_freq[i]
// (pairs (i, i + F), or (2i, 2i + 1) when pairs = 1), cos/sin scaled by attn_factor.
// One invocation per (head, j < D - F): j < F rotates pair j, the others copy column F + j.
#include "common.glsl"

layout(std430, binding = B_X) readonly buffer XS { float X[]; };
layout(std430, binding = B_Y) writeonly buffer YS { float Y[]; };
layout(std430, binding = B_V0) readonly buffer FS { float INV_FREQ[]; };
layout(std430, binding = B_STEP) readonly buffer SS { int STEP[]; };

layout(push_constant) uniform Params {
  uint C, D, F, pairs, mb;
  float attn_factor;
} p;

#include "rope.glsl"

void main() {
  const uint per_head = p.D - p.F;
  const uint e = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
  if (e >= (p.C / p.D) * per_head) return;
  const uint h = e / per_head, j = e % per_head;
  const uint base = t * p.C + h * p.D;
  if (j >= p.F) {
    Y[base + p.F + j] = X[base + p.F + j];
    return;
  }
  const vec2 cs = rope_cos_sin(STEP[p.mb + t], INV_FREQ[j]) * p.attn_factor;
  const uint a = p.pairs != 0u ? 2u * j : j, b = p.pairs != 0u ? 2u * j + 1u : j + p.F;
  const float xa = X[base + a], xb = X[base + b];
  Y[base + a] = xa * cs.x - xb * cs.y;
  Y[base + b] = xb * cs.x + xa * cs.y;
}
