// Reading weights in elm's layouts (src/core/dtype.h) from binding B_W as 32-bit words, so no 8/16-bit
// storage features are needed. WTYPE (specialization constant 1) selects the element type; the
// driver compiles only the selected branch.
//   0 F32, 1 F16, 2 BF16, 3 Q8 (scale * q), 4 Q4 (scale * (q - 8)), 5 Q4M (scale * q + min)
// Quantized: quants plane, then scales (f16 or f32) at word `soff`, then mins at word `moff`; nibble
// order: in every 32 values, byte j holds value j (low nibble) and value j + 16 (high nibble).
layout(constant_id = 1) const uint WTYPE = 0;

layout(std430, binding = B_W) readonly buffer WWords { uint Wd[]; };
layout(std430, binding = B_W) readonly buffer WPairs { uvec2 W2[]; };
layout(std430, binding = B_W) readonly buffer WQuads { uvec4 W4[]; };

struct WDesc {
  uint K;      // columns (values per row)
  uint group;  // values per scale
  uint soff;   // scales plane, in words from the start of the tensor
  uint moff;   // mins plane (Q4M)
  bool sf32;   // scales are float32 (else float16)
};

float w_scale_at(WDesc d, uint base, uint idx) {
  return d.sf32 ? uintBitsToFloat(Wd[base + idx]) : unpackHalf2x16(Wd[base + (idx >> 1)])[idx & 1u];
}

float bf16_lo(uint w) { return uintBitsToFloat(w << 16); }

// Small integers to float without int-to-float conversions (a quarter-rate instruction on many GPUs):
// 0x4B000000 | b is the float 2^23 + b exactly, for b < 2^23.
const float kMagic = 8388608.0;
// The four bytes of w as floats, each minus `offset` (exact for the small values here).
vec4 bytes_f(uint w, float offset) {
  return uintBitsToFloat((uvec4(w, w >> 8, w >> 16, w >> 24) & 0xffu) | 0x4B000000u) - (kMagic + offset);
}
// Signed bytes: flipping the sign bit maps int8 q to q + 128.
vec4 sbytes_f(uint w) { return bytes_f(w ^ 0x80808080u, 128.0); }
float bf16_hi(uint w) { return uintBitsToFloat(w & 0xffff0000u); }

// One element: row `row`, column `k`.
float w_elem(WDesc d, uint row, uint k) {
  const uint e = row * d.K + k;
  if (WTYPE == 0) return uintBitsToFloat(Wd[e]);
  if (WTYPE == 1) return unpackHalf2x16(Wd[e >> 1])[e & 1u];
  if (WTYPE == 2) return (e & 1u) != 0 ? bf16_hi(Wd[e >> 1]) : bf16_lo(Wd[e >> 1]);
  const uint gi = row * (d.K / d.group) + k / d.group;
  const float s = w_scale_at(d, d.soff, gi);
  if (WTYPE == 3) return s * float(bitfieldExtract(int(Wd[e >> 2]), int(8u * (e & 3u)), 8));
  const uint j = k & 31u;
  const uint byte_index = row * (d.K / 2u) + (k >> 5) * 16u + (j & 15u);
  const uint q = (Wd[byte_index >> 2] >> (8u * (byte_index & 3u) + (j >= 16u ? 4u : 0u))) & 15u;
  if (WTYPE == 4) return s * (float(q) - 8.0);
  return s * float(q) + w_scale_at(d, d.moff, gi);
}

// Matrix-vector products go through "units" of a row, so that consecutive invocations read
// consecutive weight words and nearly consecutive x (coalesced loads):
//   Q4: unit u is quant word u % 4 of block u / 4: values 4k..4k+3 (low nibbles) and 16+4k..16+4k+3
//       (high nibbles) of the block, k = u % 4 (x as xa, xb);
//   others: values 4u..4u+3 (x as xa).
uint w_units(WDesc d) { return WTYPE >= 4 ? d.K / 8u : d.K / 4u; }
// Offset (in values) of the unit's first and second run of 4 values in the row.
uint unit_xa(uint u) { return WTYPE >= 4 ? (u >> 2) * 32u + (u & 3u) * 4u : 4u * u; }
uint unit_xb(uint u) { return (u >> 2) * 32u + (u & 3u) * 4u + 16u; }

// Dot product of unit u of row `row` with its x values (xs: their sum, used by Q4M). Needs K % 32 == 0.
float w_unit_dot(WDesc d, uint row, uint u, vec4 xa, vec4 xb, float xs) {
  if (WTYPE == 0) return dot(xa, uintBitsToFloat(W4[row * (d.K >> 2) + u]));
  if (WTYPE == 1 || WTYPE == 2) {
    const uvec2 w = W2[row * (d.K >> 2) + u];
    if (WTYPE == 1) return dot(xa, vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y)));
    return dot(xa, vec4(bf16_lo(w.x), bf16_hi(w.x), bf16_lo(w.y), bf16_hi(w.y)));
  }
  const uint block = WTYPE >= 4 ? u >> 2 : u >> 3;
  const uint gi = row * (d.K / d.group) + (block * 32u) / d.group;
  const float s = w_scale_at(d, d.soff, gi);
  if (WTYPE == 3) return s * dot(xa, sbytes_f(Wd[row * (d.K >> 2) + u]));
  const uint w = Wd[row * (d.K >> 3) + u];
  // Q4 is centred: q - 8 directly; Q4M adds min * sum(x).
  const float offset = WTYPE == 4 ? 8.0 : 0.0;
  const float acc = dot(xa, bytes_f(w & 0x0f0f0f0fu, offset)) + dot(xb, bytes_f((w >> 4) & 0x0f0f0f0fu, offset));
  if (WTYPE == 4) return s * acc;
  return s * acc + w_scale_at(d, d.moff, gi) * xs;
}

// Dot product of 32-value block b of row `row` (quantized types, K % 32 == 0) with its x values x[0..7]
// (values 4i..4i+3 of the block in x[i]); xs: their sum (Q4M). One 16-byte load per Q4 block, two per
// Q8 block: the matvec's shared-x path reads a whole block per invocation.
float w_block_dot(WDesc d, uint row, uint b, vec4 x[8], float xs) {
  const uint gi = row * (d.K / d.group) + (b * 32u) / d.group;
  const float s = w_scale_at(d, d.soff, gi);
  if (WTYPE == 3) {
    const uint i = row * (d.K >> 4) + 2u * b;
    const uvec4 a = W4[i], c = W4[i + 1u];
    return s * (dot(x[0], sbytes_f(a.x)) + dot(x[1], sbytes_f(a.y)) + dot(x[2], sbytes_f(a.z)) +
                dot(x[3], sbytes_f(a.w)) + dot(x[4], sbytes_f(c.x)) + dot(x[5], sbytes_f(c.y)) +
                dot(x[6], sbytes_f(c.z)) + dot(x[7], sbytes_f(c.w)));
  }
  // Word i holds values 4i..4i+3 (low nibbles) and 16+4i..16+4i+3 (high nibbles).
  const uvec4 w = W4[row * (d.K >> 5) + b];
  const float off = WTYPE == 4 ? 8.0 : 0.0;
  const uvec4 lo = w & 0x0f0f0f0fu, hi = (w >> 4) & 0x0f0f0f0fu;
  const float acc = dot(x[0], bytes_f(lo.x, off)) + dot(x[1], bytes_f(lo.y, off)) + dot(x[2], bytes_f(lo.z, off)) +
                    dot(x[3], bytes_f(lo.w, off)) + dot(x[4], bytes_f(hi.x, off)) + dot(x[5], bytes_f(hi.y, off)) +
                    dot(x[6], bytes_f(hi.z, off)) + dot(x[7], bytes_f(hi.w, off));
  if (WTYPE == 4) return s * acc;
  return s * acc + w_scale_at(d, d.moff, gi) * xs;
}
