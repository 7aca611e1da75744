#version 450
// Forgets cached positions >= n_past of one sequence (n_past = 0 resets it).
#include "common.glsl"

layout(std430, binding = B_POS) buffer PS { int POS[]; };

layout(push_constant) uniform Params {
  uint cap, seq;
  int n_past;
} p;

void main() {
  const uint s = gl_GlobalInvocationID.x;
  if (s < p.cap && POS[p.seq * p.cap + s] >= p.n_past) POS[p.seq * p.cap + s] = -1;
}
