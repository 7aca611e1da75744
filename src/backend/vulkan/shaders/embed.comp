#version 450
// out [T, C] = rows tokens[t] of the table (any weight type). Token ids are checked on the host.
#include "common.glsl"
#include "weights.glsl"

layout(std430, binding = B_Y) writeonly buffer YS { float Y[]; };
layout(std430, binding = B_STEP) readonly buffer SS { int STEP[]; };

layout(push_constant) uniform Params {
  uint C, group, soff, moff, flags;  // flags 16: float32 scales
} p;

void main() {
  const uint c = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
  if (c >= p.C) return;
  const WDesc wd = WDesc(p.C, p.group, p.soff, p.moff, (p.flags & 16u) != 0u);
  Y[t * p.C + c] = w_elem(wd, uint(STEP[t]), c);
}
