#version 450
// Appends the step's k [T, KVH*D] and v [T, KVH*DV] to the caches at slot pos (full cache) or
// pos % cap (sliding-window ring), and records the slot's position.
#include "common.glsl"

layout(std430, binding = B_X) readonly buffer KS { float KIN[]; };
layout(std430, binding = B_R) readonly buffer VS { float VIN[]; };
layout(std430, binding = B_STEP) readonly buffer SS { int STEP[]; };
layout(std430, binding = B_KC) writeonly buffer KCS { float KC[]; };
layout(std430, binding = B_VC) writeonly buffer VCS { float VC[]; };
layout(std430, binding = B_POS) writeonly buffer PS { int POS[]; };

layout(push_constant) uniform Params {
  uint KVH, D, DV, cap, ring, mb;
} p;

void main() {
  const uint e = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
  const int pos = STEP[p.mb + t];
  const uint seq = uint(STEP[2u * p.mb + t]);
  const uint slot = p.ring != 0u ? uint(pos) % p.cap : uint(pos);
  if (e < p.KVH * p.D) {
    const uint h = e / p.D, d = e % p.D;
    KC[((seq * p.KVH + h) * p.cap + slot) * p.D + d] = KIN[t * p.KVH * p.D + e];
  }
  if (e < p.KVH * p.DV) {
    const uint h = e / p.DV, d = e % p.DV;
    VC[((seq * p.KVH + h) * p.cap + slot) * p.DV + d] = VIN[t * p.KVH * p.DV + e];
  }
  if (e == 0u) POS[seq * p.cap + slot] = pos;
}
