// The kv cache's entries: float32, or with KV16 (specialization constant 1) IEEE halves, two a 32-bit
// word (element i in the low half of word i / 2 when i is even). Declares the cache views of
// B_KC / B_VC and how a value is read and rounded as stored. Needs common.glsl.
layout(constant_id = 1) const uint KV16 = 0;

layout(std430, binding = B_KC) buffer KCS { float KC[]; };
layout(std430, binding = B_KC) buffer KC4S { vec4 KC4[]; };
layout(std430, binding = B_KC) buffer KCHS { uint KCH[]; };
layout(std430, binding = B_KC) buffer KCH2S { uvec2 KCH2[]; };
layout(std430, binding = B_VC) buffer VCS { float VC[]; };
layout(std430, binding = B_VC) buffer VC4S { vec4 VC4[]; };
layout(std430, binding = B_VC) buffer VCHS { uint VCH[]; };
layout(std430, binding = B_VC) buffer VCH2S { uvec2 VCH2[]; };

// The bits of x as an IEEE half, rounded to nearest even with overflow to infinity and gradual
// underflow: the CPU's f32_to_f16 (core/half.h) in integer operations. packHalf2x16 leaves the rounding
// to the implementation: NVIDIA's driver does not round to nearest even (its halves differed from the
// CPU's by up to 1.4e-4 of the attention output's range), and folds unpack(pack(x)) differently in
// different kernels, so one-token and wider steps stopped agreeing bit for bit.
uint half_bits(float x) {
  const uint u = floatBitsToUint(x), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;  // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // rounds to 65520 or more: infinity
  if (a < 0x38800000u) {                         // below the smallest normal half
    if (a < 0x33000000u) return sign;            // rounds to zero
    const uint sh = 126u - (a >> 23), m = (a & 0x7fffffu) | 0x800000u;  // sh in [14, 24]
    const uint rem = m & ((1u << sh) - 1u), halfway = 1u << (sh - 1u);
    uint hm = m >> sh;
    if (rem > halfway || (rem == halfway && (hm & 1u) != 0u)) ++hm;
    return sign | hm;
  }
  return sign | ((a + 0xfffu + ((a >> 13) & 1u) - (112u << 23)) >> 13);
}

// x as the cache holds it (rounded to a half with KV16), so a value taken from the inputs equals the
// one read back from the cache. (Half to float is exact.)
float as_stored(float x) { return KV16 != 0u ? unpackHalf2x16(half_bits(x)).x : x; }
uint pack_pair(float a, float b) { return half_bits(a) | (half_bits(b) << 16); }

// Entry i of the key / value cache, and entries 4 * i4 .. 4 * i4 + 3.
float k_at(uint i) { return KV16 != 0u ? unpackHalf2x16(KCH[i >> 1])[i & 1u] : KC[i]; }
float v_at(uint i) { return KV16 != 0u ? unpackHalf2x16(VCH[i >> 1])[i & 1u] : VC[i]; }
vec4 k4_at(uint i4) {
  if (KV16 == 0u) return KC4[i4];
  const uvec2 w = KCH2[i4];
  return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
}
vec4 v4_at(uint i4) {
  if (KV16 == 0u) return VC4[i4];
  const uvec2 w = VCH2[i4];
  return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
}
