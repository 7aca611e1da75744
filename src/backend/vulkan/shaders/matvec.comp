#version 450
// y = x W^T for few tokens (decode). A workgroup (grid.y = token) is WG / TPR row groups of TPR
// invocations; a row group computes NR output rows, its invocations splitting the reduction over
// units of 4 or 8 values (weights.glsl, w_unit_dot: neighbours read neighbouring words) and summing
// at the end (subgroupAdd when a row group is exactly one subgroup,
// otherwise shared memory). Many rows per workgroup and several per invocation keep enough weight
// loads in flight to approach the memory bandwidth.
// Fusions (vk_program.cpp decides them):
//   several matmuls sharing x, their weights concatenated by rows: rows [0,n0) go to Y, [n0,n0+n1) to
//   Y1, the rest to Y2;
//   GLU (specialization constant GLU): rows r (gate) and glu_off + r (up) -> Y = act(gate) * up;
//   an RMSNorm of x before the product (F_NORM), a residual added after it (F_RES), a bias (F_BIAS).
#include "common.glsl"
#include "weights.glsl"
#include "erf.glsl"
#include "reduce.glsl"  // wg_sum; and the subgroup extensions with USE_SUBGROUP

layout(constant_id = 2) const uint NR = 2;    // output rows per row group
layout(constant_id = 3) const uint GLU = 0;   // 1: gate/up pairs with activation ACT
layout(constant_id = 4) const uint TPR = 32;  // invocations per row group (a power of two dividing WG)
// Shared-x path (quantized weights, K % 32 == 0): x staged once per workgroup in shared memory as XS4
// = K / 4 vec4s (normalized when fused), and each invocation reads whole 32-value blocks of its rows
// (16 or 32 bytes a load) against x from shared memory, instead of 4-byte units against x from
// global memory. 1: off.
layout(constant_id = 5) const uint XS4 = 1;
const bool SHARED_X = XS4 > 1u && WTYPE >= 3u;
const uint NROWS = GLU != 0 ? 2 * NR : NR;    // weight rows per row group
const uint RG = WG / TPR;                     // row groups per workgroup

layout(std430, binding = B_X) readonly buffer XS { float X[]; };
layout(std430, binding = B_X) readonly buffer X4S { vec4 X4[]; };
layout(std430, binding = B_Y) writeonly buffer Y0S { float Y0[]; };
layout(std430, binding = B_Y1) writeonly buffer Y1S { float Y1[]; };
layout(std430, binding = B_Y2) writeonly buffer Y2S { float Y2[]; };
layout(std430, binding = B_R) readonly buffer RS { float RES[]; };
layout(std430, binding = B_V0) readonly buffer NS { float NORM_W[]; };
layout(std430, binding = B_V0) readonly buffer NS4 { vec4 NORM_W4[]; };
layout(std430, binding = B_V1) readonly buffer BS { float BIAS[]; };

#define F_BIAS 1u
#define F_RES 2u
#define F_NORM 4u
#define F_NORM_ADD1 8u
#define F_SF32 16u

layout(push_constant) uniform Params {
  uint K, n_out;       // reduction length; output rows per token
  uint n0, n1;         // multi-output split
  uint ld0, ld1, ld2;  // output row strides
  uint w_row0;         // first weight row used
  uint glu_off;        // GLU: the up rows start glu_off rows after the gate rows
  uint group, soff, moff;
  uint flags, act;     // act: 0 silu, 1 gelu (erf), 2 gelu (tanh)
  float eps;
} p;

shared float red[(NROWS + 1) * WG];  // [row group][value][lane]
shared vec4 xsh[XS4];                 // shared-x path: x, vec4 g at swz(g)

// Invocations reading vec4s 8i..8i+7 (one block each) land on distinct 16-byte bank groups.
uint swz(uint g) { return g ^ ((g >> 3) & 7u); }

float gelu_erf(float x) { return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476)); }
float activate(float g) {
  if (p.act == 0u) return g / (1.0 + exp(-g));
  if (p.act == 1u) return gelu_erf(g);
  const float k = 0.7978845608028654;
  return 0.5 * g * (1.0 + tanh_safe(k * (g + 0.044715 * g * g * g)));
}
void main() {
  const uint tid = gl_LocalInvocationID.x, rg = tid / TPR, lane = tid % TPR;
  const uint t = gl_WorkGroupID.y;
  // Workgroups beyond maxComputeWorkGroupCount.x continue along z.
  const uint wg_row0 = (gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x) * RG * NR;
  if (wg_row0 >= p.n_out) return;  // the whole workgroup leaves together
  const uint r0 = wg_row0 + rg * NR;
  const uint xo = t * p.K;
  const WDesc wd = WDesc(p.K, p.group, p.soff, p.moff, (p.flags & F_SF32) != 0u);
  const bool norm = (p.flags & F_NORM) != 0u, add_one = (p.flags & F_NORM_ADD1) != 0u;

  uint wrow[NROWS];
  [[unroll]] for (uint j = 0; j < NROWS; ++j) {
    const uint r = min(r0 + (j % NR), p.n_out - 1u);  // rows past the end repeat the last one
    wrow[j] = p.w_row0 + r + (j >= NR ? p.glu_off : 0u);
  }
  // acc[NROWS]: sum of x^2 for the RMSNorm. The workgroup loads every x value exactly once, so the
  // norm costs no extra pass: W (x / rms * w) = (W (x * w)) / rms, and the rms is applied at the end.
  float acc[NROWS + 1];
  [[unroll]] for (uint j = 0; j <= NROWS; ++j) acc[j] = 0.0;

  float sumsq = 0.0;  // shared-x path: the workgroup's sum of x^2 (the other paths sum it in acc[NROWS])
  if (SHARED_X) {
    float ss = 0.0;
    for (uint g = tid; g < p.K / 4u; g += WG) {
      vec4 v = X4[xo / 4u + g];
      ss += dot(v, v);
      if (norm) {
        vec4 w = NORM_W4[g];
        if (add_one) w += 1.0;
        v *= w;
      }
      xsh[swz(g)] = v;
    }
    if (norm) sumsq = wg_sum(ss);  // a uniform branch: every invocation reaches the barriers inside
    barrier();
    for (uint b = lane; b < p.K / 32u; b += TPR) {
      vec4 xb[8];
      [[unroll]] for (uint i = 0; i < 8u; ++i) xb[i] = xsh[swz(8u * b + i)];
      const float xs = WTYPE == 5 ? dot((xb[0] + xb[1]) + (xb[2] + xb[3]) + (xb[4] + xb[5]) + (xb[6] + xb[7]), vec4(1.0)) : 0.0;
      [[unroll]] for (uint j = 0; j < NROWS; ++j) acc[j] += w_block_dot(wd, wrow[j], b, xb, xs);
    }
  } else if ((p.K & 31u) == 0u) {
    const uint xo4 = xo >> 2;
    for (uint u = lane; u < w_units(wd); u += TPR) {
      const uint ia = unit_xa(u) >> 2, ib = unit_xb(u) >> 2;
      vec4 xa = X4[xo4 + ia], xb = vec4(0.0);
      if (WTYPE >= 4) xb = X4[xo4 + ib];
      if (norm) {
        vec4 wa = NORM_W4[ia], wb = WTYPE >= 4 ? NORM_W4[ib] : vec4(0.0);
        if (add_one) wa += 1.0, wb += 1.0;
        acc[NROWS] += dot(xa, xa) + dot(xb, xb);
        xa *= wa, xb *= wb;
      }
      const float xs = WTYPE == 5 ? dot(xa + xb, vec4(1.0)) : 0.0;
      [[unroll]] for (uint j = 0; j < NROWS; ++j) acc[j] += w_unit_dot(wd, wrow[j], u, xa, xb, xs);
    }
  } else {
    for (uint k = lane; k < p.K; k += TPR) {
      float xv = X[xo + k];
      if (norm) {
        acc[NROWS] += xv * xv;
        xv *= add_one ? 1.0 + NORM_W[k] : NORM_W[k];
      }
      [[unroll]] for (uint j = 0; j < NROWS; ++j) acc[j] += xv * w_elem(wd, wrow[j], k);
    }
  }

  // Sum the NROWS partial sums and the sum of squares over the row group's lanes: subgroupAdd, then
  // (a row group of several subgroups) the subgroups' sums through shared memory; lane 0 ends with
  // the totals. Row groups are runs of consecutive invocations, and so are subgroups on every driver.
  bool reduced = false;
#ifdef USE_SUBGROUP
  if (TPR % gl_SubgroupSize == 0u) {
    [[unroll]] for (uint j = 0; j <= NROWS; ++j) acc[j] = subgroupAdd(acc[j]);
    const uint per = TPR / gl_SubgroupSize;
    if (per > 1u) {
      const uint base = rg * (NROWS + 1) * TPR, sub = lane / gl_SubgroupSize;
      if (subgroupElect()) [[unroll]] for (uint j = 0; j <= NROWS; ++j) red[base + j * TPR + sub] = acc[j];
      barrier();
      if (lane == 0u) {
        [[unroll]] for (uint j = 0; j <= NROWS; ++j) {
          float sum = 0.0;
          for (uint i = 0; i < per; ++i) sum += red[base + j * TPR + i];
          acc[j] = sum;
        }
      }
    }
    reduced = true;
  }
#endif
  if (!reduced) {
    const uint base = rg * (NROWS + 1) * TPR;
    [[unroll]] for (uint j = 0; j <= NROWS; ++j) red[base + j * TPR + lane] = acc[j];
    barrier();
    for (uint s = TPR / 2u; s > 0u; s >>= 1) {
      if (lane < s) [[unroll]] for (uint j = 0; j <= NROWS; ++j) red[base + j * TPR + lane] += red[base + j * TPR + lane + s];
      barrier();
    }
    [[unroll]] for (uint j = 0; j <= NROWS; ++j) acc[j] = red[base + j * TPR];
  }
  if (norm) {
    const float inv = 1.0 / sqrt((SHARED_X ? sumsq : acc[NROWS]) / float(p.K) + p.eps);
    [[unroll]] for (uint j = 0; j < NROWS; ++j) acc[j] *= inv;
  }

  if (lane != 0u || r0 >= p.n_out) return;
  const bool bias = (p.flags & F_BIAS) != 0u;
  [[unroll]] for (uint j = 0; j < NR; ++j) {
    const uint r = r0 + j;
    if (r >= p.n_out) break;
    if (GLU != 0) {
      float g = acc[j], u = acc[NR + j];
      if (bias) g += BIAS[r], u += BIAS[p.glu_off + r];
      Y0[t * p.ld0 + r] = activate(g) * u;
      continue;
    }
    float v = acc[j];
    if (bias) v += BIAS[r];
    if (r < p.n0) {
      if ((p.flags & F_RES) != 0u) v += RES[t * p.ld0 + r];
      Y0[t * p.ld0 + r] = v;
    } else if (r < p.n0 + p.n1) {
      Y1[t * p.ld1 + r - p.n0] = v;
    } else {
      Y2[t * p.ld2 + r - p.n0 - p.n1] = v;
    }
  }
}
