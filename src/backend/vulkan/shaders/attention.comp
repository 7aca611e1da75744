#version 450
// Causal attention of one query head over its sequence's cache: one workgroup per (head, token).
// Keys are taken WG at a time with an online softmax (running max m, sum l, rescaled accumulators):
// invocation i scores key i of the chunk; then the workgroup splits into groups of DV / 4 invocations,
// each owning four output dims, and group g accumulates keys g, g + groups, ... of the chunk (short
// chains of independent loads); the groups' partial outputs are summed at the end.
// Visible keys: cached position pk with pk <= pq and (window == 0 or pq - pk < window).
// rope = 1: q is rotated while loading (the Rope node that feeds only this attention, folded in).
#include "common.glsl"
#include "reduce.glsl"
#include "rope.glsl"

layout(std430, binding = B_X) readonly buffer QS { float Q[]; };
layout(std430, binding = B_Y) writeonly buffer OS { float O[]; };
layout(std430, binding = B_STEP) readonly buffer SS { int STEP[]; };
layout(std430, binding = B_KC) readonly buffer KCS { float KC[]; };
layout(std430, binding = B_KC) readonly buffer KC4S { vec4 KC4[]; };
layout(std430, binding = B_VC) readonly buffer VCS { float VC[]; };
layout(std430, binding = B_VC) readonly buffer VC4S { vec4 VC4[]; };
layout(std430, binding = B_POS) readonly buffer PS { int POS[]; };
layout(std430, binding = B_V0) readonly buffer FS { float INV_FREQ[]; };

layout(push_constant) uniform Params {
  uint H, KVH, D, DV;
  uint cap, ring, window, mb;
  float scale, softcap;
  uint rope, F, pairs;
  float attn_factor;
} p;

const uint MAX_D = 512u;  // head_dim and v_head_dim limit (vk_program.h kMaxHeadDim); WG >= MAX_D / 4
shared float qs[MAX_D];
shared float probs[WG];
shared float partial[4 * WG];  // [group][dim]

// Four dims of value row `row` from 4 * lane (zero past DV).
vec4 load_v(uint row, uint lane, bool vec_v) {
  if (vec_v) return VC4[((row * p.DV) >> 2) + lane];
  vec4 v = vec4(0.0);
  [[unroll]] for (uint c = 0; c < 4u; ++c)
    if (4u * lane + c < p.DV) v[c] = VC[row * p.DV + 4u * lane + c];
  return v;
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y;
  const int pq = STEP[p.mb + t];
  const uint seq = uint(STEP[2u * p.mb + t]);
  const uint kvh = h / (p.H / p.KVH);
  const uint qo = (t * p.H + h) * p.D;
  for (uint d = tid; d < p.D; d += WG) {
    float q = Q[qo + d];
    if (p.rope != 0u && d < 2u * p.F) {
      const RopePair rp = rope_pair(d, p.F, p.pairs != 0u);
      q = rope_rotate(q, Q[qo + rp.partner], rp, rope_cos_sin(pq, INV_FREQ[rp.freq]) * p.attn_factor);
    }
    qs[d] = q;
  }
  barrier();

  const uint rows = (seq * p.KVH + kvh) * p.cap;  // first cache row of this (sequence, kv head)
  // Slots to scan: a full cache keeps position p in slot p, a ring anywhere.
  uint lo = 0u, hi = p.cap;
  if (p.ring == 0u) {
    hi = min(uint(pq) + 1u, p.cap);
    if (p.window > 0u && uint(pq) + 1u > p.window) lo = uint(pq) + 1u - p.window;
  }
  const bool vec_k = (p.D & 3u) == 0u, vec_v = (p.DV & 3u) == 0u;
  const uint lanes = (p.DV + 3u) / 4u, groups = WG / lanes;
  const uint vlane = tid % lanes, vgroup = tid / lanes;

  float m = -1.0 / 0.0, l = 0.0;
  vec4 acc = vec4(0.0);

  for (uint c0 = lo; c0 < hi; c0 += WG) {
    const uint s = c0 + tid;
    float score = -1.0 / 0.0;
    if (s < hi) {
      const int pk = POS[seq * p.cap + s];
      if (pk >= 0 && pk <= pq && (p.window == 0u || uint(pq - pk) < p.window)) {
        float dotv = 0.0;
        if (vec_k) {
          const uint kb = ((rows + s) * p.D) >> 2;
          for (uint d = 0; d < p.D / 4u; ++d)
            dotv += dot(vec4(qs[4u * d], qs[4u * d + 1u], qs[4u * d + 2u], qs[4u * d + 3u]), KC4[kb + d]);
        } else {
          for (uint d = 0; d < p.D; ++d) dotv += qs[d] * KC[(rows + s) * p.D + d];
        }
        score = dotv * p.scale;
        if (p.softcap > 0.0) score = p.softcap * tanh_safe(score / p.softcap);
      }
    }
    const float chunk_max = wg_max(score);
    if (chunk_max == -1.0 / 0.0) continue;  // nothing visible in this chunk (uniform)
    const float m_new = max(m, chunk_max);
    const float corr = m == -1.0 / 0.0 ? 0.0 : exp(m - m_new);
    const float e = score == -1.0 / 0.0 ? 0.0 : exp(score - m_new);
    l = l * corr + wg_sum(e);
    probs[tid] = e;
    barrier();
    if (vgroup < groups) {
      const uint n = min(WG, hi - c0);
      acc *= corr;
      for (uint j = vgroup; j < n; j += groups) acc += probs[j] * load_v(rows + c0 + j, vlane, vec_v);
    }
    barrier();  // probs is rewritten by the next chunk
    m = m_new;
  }
  if (vgroup < groups) [[unroll]] for (uint c = 0; c < 4u; ++c) partial[vgroup * 4u * lanes + 4u * vlane + c] = acc[c];
  barrier();
  for (uint d = tid; d < p.DV; d += WG) {
    float sum = 0.0;
    for (uint g = 0; g < groups; ++g) sum += partial[g * 4u * lanes + d];
    O[(t * p.H + h) * p.DV + d] = l > 0.0 ? sum / l : 0.0;
  }
}
