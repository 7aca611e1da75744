#version 450
// y [T, N] = x [T, K] W^T (+ bias) for many tokens (prefill): 64x64 output tiles, 256 invocations each
// computing 4x4 outputs; weight tiles are dequantized into shared memory 32 columns at a time.
// WG must be 256 (specialization constant 0).
#include "common.glsl"
#include "weights.glsl"

layout(std430, binding = B_X) readonly buffer XS { float X[]; };
layout(std430, binding = B_Y) writeonly buffer YS { float Y[]; };
layout(std430, binding = B_V1) readonly buffer BS { float BIAS[]; };

layout(push_constant) uniform Params {
  uint K, N, T;  // reduction length, output columns, tokens
  uint ldy;      // output row stride
  uint w_row0;   // first weight row used
  uint group, soff, moff;
  uint flags;    // 1: bias, 16: float32 scales
} p;

const uint TILE = 64u, BK = 32u;
shared float xs[BK][TILE + 1u];
shared float ws[BK][TILE + 1u];

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint tx = tid & 15u, ty = tid >> 4;
  const uint n0 = gl_WorkGroupID.x * TILE, t0 = gl_WorkGroupID.y * TILE;
  const WDesc wd = WDesc(p.K, p.group, p.soff, p.moff, (p.flags & 16u) != 0u);
  float acc[4][4];
  [[unroll]] for (uint i = 0; i < 4u; ++i) [[unroll]] for (uint j = 0; j < 4u; ++j) acc[i][j] = 0.0;

  for (uint k0 = 0; k0 < p.K; k0 += BK) {
    [[unroll]] for (uint i = 0; i < 8u; ++i) {
      const uint e = tid + 256u * i, r = e >> 5, c = e & 31u, k = k0 + c;
      xs[c][r] = (t0 + r < p.T && k < p.K) ? X[(t0 + r) * p.K + k] : 0.0;
      ws[c][r] = (n0 + r < p.N && k < p.K) ? w_elem(wd, p.w_row0 + n0 + r, k) : 0.0;
    }
    barrier();
    [[unroll]] for (uint kk = 0; kk < BK; ++kk) {
      float a[4], b[4];
      [[unroll]] for (uint i = 0; i < 4u; ++i) a[i] = xs[kk][ty + 16u * i];
      [[unroll]] for (uint j = 0; j < 4u; ++j) b[j] = ws[kk][tx + 16u * j];
      [[unroll]] for (uint i = 0; i < 4u; ++i) [[unroll]] for (uint j = 0; j < 4u; ++j) acc[i][j] += a[i] * b[j];
    }
    barrier();
  }
  [[unroll]] for (uint i = 0; i < 4u; ++i) {
    const uint t = t0 + ty + 16u * i;
    if (t >= p.T) continue;
    [[unroll]] for (uint j = 0; j < 4u; ++j) {
      const uint n = n0 + tx + 16u * j;
      if (n < p.N) Y[t * p.ldy + n] = acc[i][j] + ((p.flags & 1u) != 0u ? BIAS[n] : 0.0);
    }
  }
}
