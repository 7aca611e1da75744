#version 450
// y = a + b or a * b over [R, C]; b is [R, C] or one broadcast row [1, C].
#include "common.glsl"

layout(std430, binding = B_X) readonly buffer AS { float A[]; };
layout(std430, binding = B_R) readonly buffer BS { float B[]; };
layout(std430, binding = B_Y) writeonly buffer YS { float Y[]; };

layout(push_constant) uniform Params {
  uint n, C, mul, broadcast;
} p;

void main() {
  const uint stride = gl_NumWorkGroups.x * WG;
  for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
    const float b = B[p.broadcast != 0u ? i % p.C : i];
    Y[i] = p.mul != 0u ? A[i] * b : A[i] + b;
  }
}
