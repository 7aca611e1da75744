// Rotary embedding pieces shared by rope.comp and the kernels that rotate while loading (kv_write.comp
// for keys, attention.comp for queries). Rotated pairs are (i, i + F) (HF rotate_half) or (2i, 2i + 1)
// (pairs = 1); the angle of pair i is pos * inv_freq[i].

// cos and sin of a float angle of any size: Cody-Waite reduction by 2 pi in three parts (the first
// exact in a few bits, so k * part is exact), then the hardware functions on [-pi, pi].
vec2 cos_sin(float a) {
  const float k = round(a * 0.15915494309189535);
  float r = a - k * 6.28125;
  r -= k * 1.9353071693331003e-3;
  r -= k * 1.0253131677018246e-11;
  return vec2(cos(r), sin(r));
}

// cos and sin of pos * freq, the angle rounded to float first like transformers computes it: `precise`
// keeps the compiler from fusing the product into the reduction (an FMA would use the exact product,
// which differs by up to half an ulp of the angle: 1e-4 radians at position 4000).
vec2 rope_cos_sin(int pos, float freq) {
  precise float angle = float(pos) * freq;
  return cos_sin(angle);
}

struct RopePair {
  uint partner;  // the dim rotated together with this one
  uint freq;     // its frequency index
  bool first;    // first of the pair: x c - partner s; second: x c + partner s
};

// For a dim d < 2F of a head.
RopePair rope_pair(uint d, uint F, bool pairs) {
  RopePair p;
  if (pairs) {
    p.first = (d & 1u) == 0u;
    p.freq = d >> 1;
    p.partner = p.first ? d + 1u : d - 1u;
  } else {
    p.first = d < F;
    p.freq = p.first ? d : d - F;
    p.partner = p.first ? d + F : d - F;
  }
  return p;
}

float rope_rotate(float x, float partner, RopePair p, vec2 cs) {
  return p.first ? x * cs.x - partner * cs.y : x * cs.x + partner * cs.y;
}
