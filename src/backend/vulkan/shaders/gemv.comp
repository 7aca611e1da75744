#version 450
#ifdef INT8
#extension GL_EXT_spirv_intrinsics : require
#endif
// y = x W^T for few tokens (decode), built to keep many weight loads in flight. The weights are read
// in 16-byte chunks (uvec4): 4 F32 values, 8 F16/BF16, 16 Q8 (half a block), 32 Q4/Q4M (a block).
// A workgroup (grid.y = token) is WG / TPR row groups of TPR invocations; a row group computes NR output
// rows (GLU: NR gate and NR up rows). In one pass an invocation holds CH chunks of each of its rows in
// registers (chunks lane, lane + TPR, ...: a row group reads whole runs of consecutive chunks), all of
// them requested before any arithmetic; the first pass is requested before x is staged, so the weight
// stream starts at once. x is staged once per workgroup in shared memory (normalized when an RMSNorm is
// fused), swizzled so that neighbouring invocations reading neighbouring chunks hit distinct banks.
// Partial sums meet through subgroupAdd (and shared memory across the subgroups of a row group).
// Fusions and push constants as in matvec.comp (vk_program.cpp decides them): several outputs split by
// rows, GLU, RMSNorm prologue, residual and bias epilogue.
// Needs K % (values per chunk) == 0 and XS4 >= K / 4 rounded up to a multiple of 8.
//
// INT8 (gemv_i8, quantized weights only, K % 32 == 0; needs the device's shaderIntegerDotProduct): x is
// staged as int8, quantized per 32-value block as the CPU's int8-activation kernels do (d = amax / 127,
// q = round-to-nearest-even(x * 127 / amax) clamped to +-127; cpu/qgemm.cpp), with (d, d * sum q) per
// block, and the weights meet it in 4x8-bit packed integer dot products (OpSDot): per Q4 chunk 8 dot
// products instead of 32 conversions and FMAs. With a fused RMSNorm, x * w is quantized and the sums
// are divided by the rms at the end (the rounding is scale-invariant up to float rounding). Shared
// memory: XS4 uvec4s, the first 16 values of block b at b, the last 16 at hoff + b (hoff: the number
// of blocks rounded up to 8, plus 4, so that a Q8 row group's two halves do not share banks), and
// XS4 / 2 vec2s (d, d * sum q).
#include "common.glsl"
#include "weights.glsl"
#include "erf.glsl"
#include "reduce.glsl"  // wg_sum; and the subgroup extensions with USE_SUBGROUP

layout(constant_id = 2) const uint NR = 2;    // output rows per row group
layout(constant_id = 3) const uint GLU = 0;   // 1: gate/up pairs with activation act
layout(constant_id = 4) const uint TPR = 32;  // invocations per row group (a power of two dividing WG)
layout(constant_id = 5) const uint CH = 2;    // chunks of each row an invocation holds per pass
layout(constant_id = 6) const uint XS4 = 8;   // vec4s of x in shared memory (K / 4 rounded up to 8: swz);
                                              // INT8: uvec4s of int8 x (hoff + blocks)
const uint NROWS = GLU != 0 ? 2 * NR : NR;    // weight rows per row group
const uint RG = WG / TPR;                     // row groups per workgroup
const uint VPC = WTYPE == 0 ? 4 : WTYPE <= 2 ? 8 : WTYPE == 3 ? 16 : 32;  // values per chunk
const uint XV = VPC / 4;                      // vec4s of x per chunk
const uint NW = NROWS * CH;                   // chunks in registers per invocation

layout(std430, binding = B_X) readonly buffer X4S { vec4 X4[]; };
layout(std430, binding = B_Y) writeonly buffer Y0S { float Y0[]; };
layout(std430, binding = B_Y1) writeonly buffer Y1S { float Y1[]; };
layout(std430, binding = B_Y2) writeonly buffer Y2S { float Y2[]; };
layout(std430, binding = B_R) readonly buffer RS { float RES[]; };
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
#ifdef INT8
shared uvec4 xq[XS4];      // int8 x: block b's values 0..15 at b, 16..31 at hoff + b
shared vec2 xd[XS4 / 2];   // block b: (d, d * sum of its q)

// OpSDot with PackedVectorFormat4x8Bit (0): the dot product of the 4 signed bytes of a and b.
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4(uint a, uint b, spirv_literal int fmt);
#else
shared vec4 xsh[XS4];                 // x, vec4 g at swz(g)
#endif

// Invocations reading vec4 j of consecutive chunks (8 or 4 vec4s apart) land on distinct 16-byte bank
// groups. A permutation within each run of 8 vec4s.
uint swz(uint g) { return g ^ ((g >> 3) & 7u); }

float gelu_erf(float x) { return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476)); }
float activate(float g) {
  if (p.act == 0u) return g / (1.0 + exp(-g));
  if (p.act == 1u) return gelu_erf(g);
  const float k = 0.7978845608028654;
  return 0.5 * g * (1.0 + tanh_safe(k * (g + 0.044715 * g * g * g)));
}

// Dot product of one chunk w (scale s, min m) with its x values x[0..XV).
float chunk_dot(uvec4 w, float s, float m, vec4 x[8]) {
  if (WTYPE == 0) return dot(x[0], uintBitsToFloat(w));
  if (WTYPE == 1)
    return dot(x[0], vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y))) +
           dot(x[1], vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w)));
  if (WTYPE == 2)
    return dot(x[0], vec4(bf16_lo(w.x), bf16_hi(w.x), bf16_lo(w.y), bf16_hi(w.y))) +
           dot(x[1], vec4(bf16_lo(w.z), bf16_hi(w.z), bf16_lo(w.w), bf16_hi(w.w)));
  if (WTYPE == 3)
    return s * (dot(x[0], sbytes_f(w.x)) + dot(x[1], sbytes_f(w.y)) + dot(x[2], sbytes_f(w.z)) +
                dot(x[3], sbytes_f(w.w)));
  // Word i holds values 4i..4i+3 (low nibbles) and 16+4i..16+4i+3 (high nibbles).
  const float off = WTYPE == 4 ? 8.0 : 0.0;
  const uvec4 lo = w & 0x0f0f0f0fu, hi = (w >> 4) & 0x0f0f0f0fu;
  const float acc = dot(x[0], bytes_f(lo.x, off)) + dot(x[1], bytes_f(lo.y, off)) + dot(x[2], bytes_f(lo.z, off)) +
                    dot(x[3], bytes_f(lo.w, off)) + dot(x[4], bytes_f(hi.x, off)) + dot(x[5], bytes_f(hi.y, off)) +
                    dot(x[6], bytes_f(hi.z, off)) + dot(x[7], bytes_f(hi.w, off));
  if (WTYPE == 4) return s * acc;
  const vec4 xs = ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]));
  return s * acc + m * dot(xs, vec4(1.0));
}

#ifdef INT8
// Dot product of one chunk w (scale s, min m) with its int8 x: a, b (Q8: a alone) the packed values,
// ds = (d, d * sum q) of their block.
float chunk_dot_i8(uvec4 w, float s, float m, uvec4 a, uvec4 b, vec2 ds) {
  if (WTYPE == 3)
    return s * ds.x * float(sdot4(w.x, a.x, 0) + sdot4(w.y, a.y, 0) + sdot4(w.z, a.z, 0) + sdot4(w.w, a.w, 0));
  // Byte j holds values j (low nibble) and 16 + j (high nibble); nibbles are 0..15, signed bytes alike.
  const uvec4 lo = w & 0x0f0f0f0fu, hi = (w >> 4) & 0x0f0f0f0fu;
  const int q = ((sdot4(lo.x, a.x, 0) + sdot4(lo.y, a.y, 0)) + (sdot4(lo.z, a.z, 0) + sdot4(lo.w, a.w, 0))) +
                ((sdot4(hi.x, b.x, 0) + sdot4(hi.y, b.y, 0)) + (sdot4(hi.z, b.z, 0) + sdot4(hi.w, b.w, 0)));
  if (WTYPE == 4) return s * (ds.x * float(q) - 8.0 * ds.y);  // sum (q_w - 8) q_x d_x
  return s * ds.x * float(q) + m * ds.y;                      // Q4M: + min * d_x * sum q_x
}

uint pack_i8(ivec4 q) {
  return (uint(q.x) & 0xffu) | ((uint(q.y) & 0xffu) << 8) | ((uint(q.z) & 0xffu) << 16) | (uint(q.w) << 24);
}
#endif

uint wrow[NROWS];
uvec4 wv[NW];  // chunk i of row j at j * CH + i
float sv[NW], mv[NW];

// Requests the chunks of pass c0 (chunks past the row's end read its last one, and are not used).
void load_pass(WDesc wd, uint c0, uint nc, uint lane) {
  [[unroll]] for (uint j = 0; j < NROWS; ++j) {
    [[unroll]] for (uint i = 0; i < CH; ++i) {
      const uint c = min(c0 + i * TPR + lane, nc - 1u);
      wv[j * CH + i] = W4[wrow[j] * nc + c];
      if (WTYPE >= 3) {
        const uint gi = wrow[j] * (wd.K / wd.group) + (c * VPC) / wd.group;
        sv[j * CH + i] = w_scale_at(wd, wd.soff, gi);
        if (WTYPE == 5) mv[j * CH + i] = w_scale_at(wd, wd.moff, gi);
      }
    }
  }
}

void main() {
  const uint tid = gl_LocalInvocationID.x, rg = tid / TPR, lane = tid % TPR;
  const uint t = gl_WorkGroupID.y;
  // Workgroups beyond maxComputeWorkGroupCount.x continue along z.
  const uint wg_row0 = (gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x) * RG * NR;
  if (wg_row0 >= p.n_out) return;  // the whole workgroup leaves together
  const uint r0 = wg_row0 + rg * NR;
  const WDesc wd = WDesc(p.K, p.group, p.soff, p.moff, (p.flags & F_SF32) != 0u);
  const bool norm = (p.flags & F_NORM) != 0u, add_one = (p.flags & F_NORM_ADD1) != 0u;
  const uint nc = p.K / VPC;  // chunks per row

  [[unroll]] for (uint j = 0; j < NROWS; ++j) {
    const uint r = min(r0 + (j % NR), p.n_out - 1u);  // rows past the end repeat the last one
    wrow[j] = p.w_row0 + r + (j >= NR ? p.glu_off : 0u);
  }
  // The first pass's weights are on their way while x is staged.
  load_pass(wd, 0u, nc, lane);

  // x into shared memory; with a fused RMSNorm, x * w, and the sum of squares for the rms (applied to
  // the sums at the end: W (x / rms * w) = (W (x * w)) / rms).
  float ss = 0.0;
  const uint xo4 = t * (p.K / 4u);
#ifdef INT8
  // One invocation quantizes a whole block: its 8 vec4s (and the norm weight's) requested together.
  const uint nb = p.K / 32u, hoff = (nb + 7u) / 8u * 8u + 4u;
  for (uint b = tid; b < nb; b += WG) {
    vec4 v[8], nw[8];
    [[unroll]] for (uint k = 0; k < 8u; ++k) v[k] = X4[xo4 + b * 8u + k];
    if (norm) [[unroll]] for (uint k = 0; k < 8u; ++k) nw[k] = NORM_W4[b * 8u + k];
    float amax = 0.0;
    [[unroll]] for (uint k = 0; k < 8u; ++k) {
      ss += dot(v[k], v[k]);
      if (norm) v[k] *= add_one ? nw[k] + 1.0 : nw[k];
      const vec4 a = abs(v[k]);
      amax = max(amax, max(max(a.x, a.y), max(a.z, a.w)));
    }
    const float id = amax > 0.0 ? 127.0 / amax : 0.0;
    ivec4 sum4 = ivec4(0);
    uint words[8];
    [[unroll]] for (uint k = 0; k < 8u; ++k) {
      const ivec4 q = ivec4(roundEven(clamp(v[k] * id, -127.0, 127.0)));
      sum4 += q;
      words[k] = pack_i8(q);
    }
    xq[b] = uvec4(words[0], words[1], words[2], words[3]);
    xq[hoff + b] = uvec4(words[4], words[5], words[6], words[7]);
    const float d = amax / 127.0;
    xd[b] = vec2(d, d * float((sum4.x + sum4.y) + (sum4.z + sum4.w)));
  }
#else
  for (uint g = tid; g < p.K / 4u; g += WG) {
    vec4 v = X4[xo4 + g];
    ss += dot(v, v);
    if (norm) {
      vec4 w = NORM_W4[g];
      if (add_one) w += 1.0;
      v *= w;
    }
    xsh[swz(g)] = v;
  }
#endif
  float sumsq = 0.0;
  if (norm) sumsq = wg_sum(ss);  // a uniform branch: every invocation reaches the barriers inside
  barrier();

  float acc[NROWS];
  [[unroll]] for (uint j = 0; j < NROWS; ++j) acc[j] = 0.0;
  for (uint c0 = 0; c0 < nc; c0 += TPR * CH) {
    [[unroll]] for (uint i = 0; i < CH; ++i) {
      const uint c = c0 + i * TPR + lane;
      if (c < nc) {
#ifdef INT8
        // Q4/Q4M: chunk c is block c; Q8: half c & 1 of block c / 2.
        const uint b = WTYPE == 3 ? c >> 1 : c;
        const uvec4 xa = xq[WTYPE == 3 && (c & 1u) != 0u ? hoff + b : b];
        const uvec4 xb = WTYPE == 3 ? uvec4(0u) : xq[hoff + b];
        const vec2 ds = xd[b];
        [[unroll]] for (uint j = 0; j < NROWS; ++j) acc[j] += chunk_dot_i8(wv[j * CH + i], sv[j * CH + i], mv[j * CH + i], xa, xb, ds);
#else
        vec4 xc[8];
        [[unroll]] for (uint k = 0; k < 8u; ++k) xc[k] = k < XV ? xsh[swz(c * XV + k)] : vec4(0.0);
        [[unroll]] for (uint j = 0; j < NROWS; ++j) acc[j] += chunk_dot(wv[j * CH + i], sv[j * CH + i], mv[j * CH + i], xc);
#endif
      }
    }
    if (c0 + TPR * CH < nc) load_pass(wd, c0 + TPR * CH, nc, lane);
  }

  // Sum the partial sums over the row group's lanes: subgroupAdd, then (a row group of several
  // subgroups) the subgroups' sums through shared memory; lane 0 ends with the totals. Row groups are
  // runs of consecutive invocations, and so are subgroups on every driver.
  bool reduced = false;
#ifdef USE_SUBGROUP
  if (TPR % gl_SubgroupSize == 0u) {
    [[unroll]] for (uint j = 0; j < NROWS; ++j) acc[j] = subgroupAdd(acc[j]);
    const uint per = TPR / gl_SubgroupSize;
    if (per > 1u) {
      const uint base = rg * (NROWS + 1) * TPR, sub = lane / gl_SubgroupSize;
      if (subgroupElect()) [[unroll]] for (uint j = 0; j < NROWS; ++j) red[base + j * TPR + sub] = acc[j];
      barrier();
      if (lane == 0u) {
        [[unroll]] for (uint j = 0; j < NROWS; ++j) {
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
    [[unroll]] for (uint j = 0; j < NROWS; ++j) red[base + j * TPR + lane] = acc[j];
    barrier();
    for (uint s = TPR / 2u; s > 0u; s >>= 1) {
      if (lane < s) [[unroll]] for (uint j = 0; j < NROWS; ++j) red[base + j * TPR + lane] += red[base + j * TPR + lane + s];
      barrier();
    }
    [[unroll]] for (uint j = 0; j < NROWS; ++j) acc[j] = red[base + j * TPR];
  }
  if (norm) {
    const float inv = 1.0 / sqrt(sumsq / float(p.K) + p.eps);
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
