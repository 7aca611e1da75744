#version 450
// Column/row copies: y[r, yoff + c] = x[src(r), xoff + c] for c < len. src(r) = r, or the step's
// output rows (gather = 1, OutputRows). Slice and Concat are copies too.
#include "common.glsl"

layout(std430, binding = B_X) readonly buffer XS { float X[]; };
layout(std430, binding = B_Y) writeonly buffer YS { float Y[]; };
layout(std430, binding = B_STEP) readonly buffer SS { int STEP[]; };

layout(push_constant) uniform Params {
  uint len, ldx, xoff, ldy, yoff, gather, mb;
} p;

void main() {
  const uint c = gl_GlobalInvocationID.x, r = gl_WorkGroupID.y;
  if (c >= p.len) return;
  const uint src = p.gather != 0u ? uint(STEP[3u * p.mb + r]) : r;
  Y[r * p.ldy + p.yoff + c] = X[src * p.ldx + p.xoff + c];
}
