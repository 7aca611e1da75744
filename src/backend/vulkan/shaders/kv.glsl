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

// x as the cache holds it (rounded to a half with KV16), so a value taken from the inputs equals the
// one read back from the cache.
float as_stored(float x) { return KV16 != 0u ? unpackHalf2x16(packHalf2x16(vec2(x, 0.0))).x : x; }
uint pack_pair(float a, float b) { return packHalf2x16(vec2(a, b)); }

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
