#version 450
// Causal attention of one query head over its sequence's cache: one workgroup per (head, token).
// Keys are taken WG at a time with an online softmax (running max m, sum l, rescaled accumulators):
// invocation i scores key i of the chunk (16 vec4s of its key requested before the arithmetic); then
// the workgroup splits into groups of DV / 4 invocations, each owning four output dims, and group g
// accumulates keys g, g + groups, ... of the chunk, 8 value rows requested at a time; the groups'
// partial outputs are summed at the end.
// Visible keys: cached position pk with pk <= pq and (window == 0 or pq - pk < window).
// Cache entries are float32 or halves (kv.glsl, KV16).
// rope = 1: q is rotated while loading (the Rope node that feeds only this attention, folded in).
// fused = 1 (decode steps of one token): the step's key and value come from the inputs (k rotated
// when krope = 1) instead of the cache, and the first query head of each kv head also stores them,
// so no separate kv_write launch is needed. Nothing else reads that cache slot during the launch: the
// scan takes the step's own slot from the inputs, in its place among the others, so a token's output
// is bit for bit what a step of several tokens (kv_write, then this kernel unfused) gives it, which
// greedy speculative decoding needs (tests: VulkanBatchInvariance).
// nsplit > 1 (decode steps, Tuning::attn_split): the cache's slots are cut into nsplit runs of `split`
// slots, one workgroup each (grid.z), so a long context is scanned by many workgroups at once instead
// of one per head. Each writes its run's (max, sum, unnormalized output) to SCR; the last to finish
// (a counter per (token, head) in CNT, which it resets) combines them in run order, so the result does
// not depend on the order in which workgroups finish, nor on the step's width.
#include "common.glsl"
#include "reduce.glsl"
#include "rope.glsl"
#include "kv.glsl"

layout(std430, binding = B_X) readonly buffer QS { float Q[]; };
layout(std430, binding = B_Y) writeonly buffer OS { float O[]; };
layout(std430, binding = B_STEP) readonly buffer SS { int STEP[]; };
layout(std430, binding = B_POS) buffer PS { int POS[]; };
layout(std430, binding = B_V0) readonly buffer FS { float INV_FREQ[]; };
layout(std430, binding = B_Y1) readonly buffer KINS { float KIN[]; };
layout(std430, binding = B_R) readonly buffer VINS { float VIN[]; };
layout(std430, binding = B_V1) readonly buffer KFS { float KINV_FREQ[]; };
layout(std430, binding = B_W) coherent buffer SCRS { float SCR[]; };  // [T][H][nsplit][2 + DV]
layout(std430, binding = B_Y2) coherent buffer CNTS { uint CNT[]; };  // [T][H], zero between launches

layout(push_constant) uniform Params {
  uint H, KVH, D, DV;
  uint cap, ring, window, mb;
  float scale, softcap;
  uint rope, F, pairs;
  float attn_factor;
  uint fused, krope, kF, kpairs;
  float kattn_factor;
  uint split, nsplit;
} p;

const uint MAX_D = 512u;  // head_dim and v_head_dim limit (vk_program.h kMaxHeadDim); WG >= MAX_D / 4
shared float qs[MAX_D];
shared float ks[MAX_D];  // fused: this step's key
shared float probs[WG];
shared float partial[4 * WG];  // [group][dim]
shared uint last_run;           // nsplit > 1: this workgroup finished last and combines

// Four dims of value row `row` from 4 * lane (zero past DV); `own`: the step's value, at VIN[vo].
vec4 load_v(uint row, uint lane, bool vec_v, bool own, uint vo) {
  vec4 v = vec4(0.0);
  if (own) {
    [[unroll]] for (uint c = 0; c < 4u; ++c)
      if (4u * lane + c < p.DV) v[c] = as_stored(VIN[vo + 4u * lane + c]);
    return v;
  }
  if (vec_v) return v4_at(((row * p.DV) >> 2) + lane);
  [[unroll]] for (uint c = 0; c < 4u; ++c)
    if (4u * lane + c < p.DV) v[c] = v_at(row * p.DV + 4u * lane + c);
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
  const bool fused = p.fused != 0u;
  const uint ko = (t * p.KVH + kvh) * p.D, vo = (t * p.KVH + kvh) * p.DV;
  if (fused) {
    for (uint d = tid; d < p.D; d += WG) {
      float k = KIN[ko + d];
      if (p.krope != 0u && d < 2u * p.kF) {
        const RopePair rp = rope_pair(d, p.kF, p.kpairs != 0u);
        k = rope_rotate(k, KIN[ko + rp.partner], rp, rope_cos_sin(pq, KINV_FREQ[rp.freq]) * p.kattn_factor);
      }
      ks[d] = as_stored(k);
    }
  }
  barrier();

  const uint rows = (seq * p.KVH + kvh) * p.cap;  // first cache row of this (sequence, kv head)
  const uint own_slot = p.ring != 0u ? uint(pq) % p.cap : uint(pq);
  if (fused && h % (p.H / p.KVH) == 0u && gl_WorkGroupID.z == 0u) {  // store this step's key and value
    if (KV16 != 0u) {  // head dims are even (vk_program.cpp)
      for (uint d = tid; 2u * d < p.D; d += WG)
        KCH[(((rows + own_slot) * p.D) >> 1) + d] = pack_pair(ks[2u * d], ks[2u * d + 1u]);
      for (uint d = tid; 2u * d < p.DV; d += WG)
        VCH[(((rows + own_slot) * p.DV) >> 1) + d] = pack_pair(VIN[vo + 2u * d], VIN[vo + 2u * d + 1u]);
    } else {
      for (uint d = tid; d < p.D; d += WG) KC[(rows + own_slot) * p.D + d] = ks[d];
      for (uint d = tid; d < p.DV; d += WG) VC[(rows + own_slot) * p.DV + d] = VIN[vo + d];
    }
    if (tid == 0u) POS[seq * p.cap + own_slot] = pq;
  }
  // Slots to scan: a full cache keeps position p in slot p, a ring anywhere. Fused, the step's own
  // slot is read from the inputs (ks, VIN).
  uint lo = 0u, hi = p.cap;
  if (p.ring == 0u) {
    hi = min(uint(pq) + 1u, p.cap);
    if (p.window > 0u && uint(pq) + 1u > p.window) lo = uint(pq) + 1u - p.window;
  }
  const uint z = gl_WorkGroupID.z;
  if (p.nsplit > 1u) lo = max(lo, z * p.split), hi = min(hi, (z + 1u) * p.split);  // this run (may be empty)
  const bool vec_k = (p.D & 3u) == 0u, vec_v = (p.DV & 3u) == 0u;
  const uint lanes = (p.DV + 3u) / 4u, groups = WG / lanes;
  const uint vlane = tid % lanes, vgroup = tid / lanes;

  float m = -1.0 / 0.0, l = 0.0;
  vec4 acc = vec4(0.0);
  for (uint c0 = lo; c0 < hi; c0 += WG) {
    const uint s = c0 + tid;
    float score = -1.0 / 0.0;
    if (s < hi) {
      const bool own = fused && s == own_slot;
      const int pk = own ? pq : POS[seq * p.cap + s];
      if (pk >= 0 && pk <= pq && (p.window == 0u || uint(pq - pk) < p.window)) {
        float dotv = 0.0;
        if (vec_k) {
          // 16 vec4s of the key requested at once (a head of 64 dims in one round trip).
          const uint kb = ((rows + s) * p.D) >> 2, D4 = p.D >> 2;
          for (uint d0 = 0; d0 < D4; d0 += 16u) {
            vec4 kv[16];
            [[unroll]] for (uint i = 0; i < 16u; ++i) {
              const uint d = 4u * (d0 + i);
              kv[i] = d0 + i >= D4 ? vec4(0.0)
                      : own       ? vec4(ks[d], ks[d + 1u], ks[d + 2u], ks[d + 3u])
                                  : k4_at(kb + d0 + i);
            }
            [[unroll]] for (uint i = 0; i < 16u; ++i) {
              const uint d = 4u * (d0 + i);
              if (d0 + i < D4) dotv += dot(vec4(qs[d], qs[d + 1u], qs[d + 2u], qs[d + 3u]), kv[i]);
            }
          }
        } else {
          for (uint d = 0; d < p.D; ++d) dotv += qs[d] * (own ? ks[d] : k_at((rows + s) * p.D + d));
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
      // 8 value rows requested at once per group.
      for (uint j0 = vgroup; j0 < n; j0 += 8u * groups) {
        vec4 vv[8];
        [[unroll]] for (uint i = 0; i < 8u; ++i) {
          const uint j = j0 + i * groups;
          vv[i] = j < n ? load_v(rows + c0 + j, vlane, vec_v, fused && c0 + j == own_slot, vo) : vec4(0.0);
        }
        [[unroll]] for (uint i = 0; i < 8u; ++i) {
          const uint j = j0 + i * groups;
          if (j < n) acc += probs[j] * vv[i];
        }
      }
    }
    barrier();  // probs is rewritten by the next chunk
    m = m_new;
  }
  if (vgroup < groups) [[unroll]] for (uint c = 0; c < 4u; ++c) partial[vgroup * 4u * lanes + 4u * vlane + c] = acc[c];
  barrier();
  if (p.nsplit <= 1u) {
    for (uint d = tid; d < p.DV; d += WG) {
      float sum = 0.0;
      for (uint g = 0; g < groups; ++g) sum += partial[g * 4u * lanes + d];
      O[(t * p.H + h) * p.DV + d] = l > 0.0 ? sum / l : 0.0;
    }
    return;
  }
  // This run's (m, l, unnormalized output); m and l are uniform.
  const uint th = t * p.H + h, stride = 2u + p.DV;
  const uint mine = (th * p.nsplit + z) * stride;
  for (uint d = tid; d < p.DV; d += WG) {
    float sum = 0.0;
    for (uint g = 0; g < groups; ++g) sum += partial[g * 4u * lanes + d];
    SCR[mine + 2u + d] = sum;
  }
  if (tid == 0u) SCR[mine] = m, SCR[mine + 1u] = l;
  memoryBarrierBuffer();  // the run's values are visible before the counter says so
  barrier();
  if (tid == 0u) last_run = atomicAdd(CNT[th], 1u) == p.nsplit - 1u ? 1u : 0u;
  barrier();
  if (last_run == 0u) return;
  memoryBarrierBuffer();
  // The last workgroup: every run has written its values. Combine in run order.
  const uint first = th * p.nsplit * stride;
  float mx = -1.0 / 0.0;
  for (uint r = 0; r < p.nsplit; ++r) mx = max(mx, SCR[first + r * stride]);
  float den = 0.0;
  for (uint r = 0; r < p.nsplit; ++r) {
    const float mr = SCR[first + r * stride];
    if (mr != -1.0 / 0.0) den += SCR[first + r * stride + 1u] * exp(mr - mx);
  }
  for (uint d = tid; d < p.DV; d += WG) {
    float num = 0.0;
    for (uint r = 0; r < p.nsplit; ++r) {
      const float mr = SCR[first + r * stride];
      if (mr != -1.0 / 0.0) num += SCR[first + r * stride + 2u + d] * exp(mr - mx);
    }
    O[th * p.DV + d] = den > 0.0 ? num / den : 0.0;
  }
  if (tid == 0u) CNT[th] = 0u;  // for the next launch
}
