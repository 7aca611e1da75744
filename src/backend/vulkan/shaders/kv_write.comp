#version 450
// Appends the step's k [T, KVH*D] and v [T, KVH*DV] to the caches at slot pos (full cache) or
// pos % cap (sliding-window ring), and records the slot's position. rope = 1: k is rotated first
// (the Rope node that feeds only this attention, folded in). KV16 (kv.glsl): entries are halves,
// invocation e writes the pair 2e, 2e + 1 (head dims are even).
#include "common.glsl"
#include "rope.glsl"
#include "kv.glsl"

layout(std430, binding = B_X) readonly buffer KS { float KIN[]; };
layout(std430, binding = B_R) readonly buffer VS { float VIN[]; };
layout(std430, binding = B_STEP) readonly buffer SS { int STEP[]; };
layout(std430, binding = B_POS) writeonly buffer PS { int POS[]; };
layout(std430, binding = B_V0) readonly buffer FS { float INV_FREQ[]; };

layout(push_constant) uniform Params {
  uint KVH, D, DV, cap, ring, mb;
  uint rope, F, pairs;
  float attn_factor;
} p;

// Element e of token t's keys (head e / D), rotated when rope = 1.
float key(uint t, uint e, int pos) {
  const uint h = e / p.D, d = e % p.D;
  float k = KIN[t * p.KVH * p.D + e];
  if (p.rope != 0u && d < 2u * p.F) {
    const RopePair rp = rope_pair(d, p.F, p.pairs != 0u);
    const vec2 cs = rope_cos_sin(pos, INV_FREQ[rp.freq]) * p.attn_factor;
    k = rope_rotate(k, KIN[t * p.KVH * p.D + h * p.D + rp.partner], rp, cs);
  }
  return k;
}

void main() {
  const uint e = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
  const int pos = STEP[p.mb + t];
  const uint seq = uint(STEP[2u * p.mb + t]);
  const uint slot = p.ring != 0u ? uint(pos) % p.cap : uint(pos);
  // Cache entry of (head h, dim d) in this slot: ((seq * KVH + h) * cap + slot) * dim + d.
  const uint krow = (seq * p.KVH * p.cap + slot) * p.D, vrow = (seq * p.KVH * p.cap + slot) * p.DV;
  if (KV16 != 0u) {
    const uint e2 = 2u * e;
    if (e2 < p.KVH * p.D) {
      const uint h = e2 / p.D, d = e2 % p.D;
      KCH[(krow + h * p.cap * p.D + d) >> 1] = pack_pair(key(t, e2, pos), key(t, e2 + 1u, pos));
    }
    if (e2 < p.KVH * p.DV) {
      const uint h = e2 / p.DV, d = e2 % p.DV, vi = t * p.KVH * p.DV + e2;
      VCH[(vrow + h * p.cap * p.DV + d) >> 1] = pack_pair(VIN[vi], VIN[vi + 1u]);
    }
  } else {
    if (e < p.KVH * p.D) {
      const uint h = e / p.D, d = e % p.D;
      KC[krow + h * p.cap * p.D + d] = key(t, e, pos);
    }
    if (e < p.KVH * p.DV) {
      const uint h = e / p.DV, d = e % p.DV;
      VC[vrow + h * p.cap * p.DV + d] = VIN[t * p.KVH * p.DV + e];
    }
  }
  if (e == 0u) POS[seq * p.cap + slot] = pos;
}
