#include "format/ggml_blocks.h"

#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "format/gguf.h"

namespace elm {

namespace {

float h16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return f16_to_f32(v);
}

// Q4_K / Q5_K: 8 sub-blocks of 32 values, each with a 6-bit scale and a 6-bit min packed in 12 bytes.
void scale_min_k4(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]} and Q5_K (plus u8 qh[32] before qs): 256 values.
void decode_k45(const uint8_t* p, float* y, bool five) {
  const float d = h16(p), dmin = h16(p + 2);
  const uint8_t* scales = p + 4;
  const uint8_t* qh = p + 16;
  const uint8_t* q = five ? p + 48 : p + 16;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32, u1 <<= 2, u2 <<= 2) {
    int sc, m;
    scale_min_k4(is, scales, sc, m);
    const float d1 = d * float(sc), m1 = dmin * float(m);
    scale_min_k4(is + 1, scales, sc, m);
    const float d2 = d * float(sc), m2 = dmin * float(m);
    for (int l = 0; l < 32; ++l) {
      const int hi1 = five && (qh[l] & u1) ? 16 : 0, hi2 = five && (qh[l] & u2) ? 16 : 0;
      y[j + l] = d1 * float((q[l] & 0xF) + hi1) - m1;
      y[j + l + 32] = d2 * float((q[l] >> 4) + hi2) - m2;
    }
  }
}

// Q2_K and Q3_K share the order of their 2-bit fields: in each half h of the block (128 values), byte
// 32h + (v % 32) holds values v, v + 32, v + 64, v + 96 at bits 0, 2, 4, 6; sub-block s (16 values) has
// scale index s. Value v of the block: its byte and shift.
struct Low2 {
  int byte, shift;
};
Low2 low2(int v) { return {32 * (v / 128) + v % 32, 2 * ((v % 128) / 32)}; }

// Q2_K {u8 scales[16]; u8 qs[64]; f16 d, dmin}: 16 sub-blocks of 16 values, a 4-bit scale (low nibble)
// and a 4-bit min (high nibble) each: x = d * sc * q - dmin * m, q in 0..3.
void decode_q2k(const uint8_t* p, float* y) {
  const uint8_t* scales = p;
  const uint8_t* qs = p + 16;
  const float d = h16(p + 80), dmin = h16(p + 82);
  for (int v = 0; v < 256; ++v) {
    const Low2 at = low2(v);
    const int q = (qs[at.byte] >> at.shift) & 3, sc = scales[v / 16];
    y[v] = d * float(sc & 15) * float(q) - dmin * float(sc >> 4);
  }
}

// Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}: 16 sub-blocks of 16 values with 6-bit scales
// stored as s + 32: low nibbles of sub-blocks 0-7 in bytes 0-7, of 8-15 in their high nibbles; the high
// two bits of sub-block s in byte 8 + s % 4 at bit 2 * (s / 4). Value v's third bit is bit v / 32 of
// hmask[v % 32]; x = d * (s - 32) * (q - 4 when that bit is clear, else q), q the low two bits.
void decode_q3k(const uint8_t* p, float* y) {
  const uint8_t* hmask = p;
  const uint8_t* qs = p + 32;
  const uint8_t* sc = p + 96;
  const float d = h16(p + 108);
  int scale[16];
  for (int s = 0; s < 16; ++s) {
    const int low = s < 8 ? sc[s] & 15 : sc[s - 8] >> 4, high = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    scale[s] = (low | high << 4) - 32;
  }
  for (int v = 0; v < 256; ++v) {
    const Low2 at = low2(v);
    const int q = ((qs[at.byte] >> at.shift) & 3) - ((hmask[v % 32] >> (v / 32)) & 1 ? 0 : 4);
    y[v] = d * float(scale[v / 16]) * float(q);
  }
}

// IQ4_NL and IQ4_XS: 4-bit indices into a fixed non-linear table of int8 levels (ggml's kvalues_iq4nl).
constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// 32 values from 16 bytes of indices (value j: low nibble of byte j, j + 16: its high nibble), times dl.
void decode_iq4_32(const uint8_t* qs, float dl, float* y) {
  for (int j = 0; j < 16; ++j) {
    y[j] = dl * float(kIq4Levels[qs[j] & 15]);
    y[j + 16] = dl * float(kIq4Levels[qs[j] >> 4]);
  }
}

// IQ4_XS {f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]}: 8 sub-blocks of 32 with 6-bit scales
// s + 32 (low nibble of sub-block b in scales_l[b / 2] at bit 4 * (b % 2), high two bits in scales_h
// at bit 2b): x = d * (s - 32) * level.
void decode_iq4xs(const uint8_t* p, float* y) {
  const float d = h16(p);
  const int scales_h = p[2] | p[3] << 8;
  for (int b = 0; b < 8; ++b) {
    const int s = ((p[4 + b / 2] >> (4 * (b % 2))) & 15) | ((scales_h >> (2 * b)) & 3) << 4;
    decode_iq4_32(p + 8 + 16 * b, d * float(s - 32), y + 32 * b);
  }
}

// Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: 256 values of 6 bits, 16 sub-blocks of 16.
void decode_q6k(const uint8_t* p, float* y) {
  const uint8_t* ql = p;
  const uint8_t* qh = p + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(p + 192);
  const float d = h16(p + 208);
  for (int n = 0; n < 256; n += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = int((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
      const int q2 = int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[n + l] = d * float(sc[is]) * float(q1);
      y[n + l + 32] = d * float(sc[is + 2]) * float(q2);
      y[n + l + 64] = d * float(sc[is + 4]) * float(q3);
      y[n + l + 96] = d * float(sc[is + 6]) * float(q4);
    }
  }
}

void decode_block256(GgmlType t, const uint8_t* p, float* y) {
  switch (t) {
    case GgmlType::Q2_K: return decode_q2k(p, y);
    case GgmlType::Q3_K: return decode_q3k(p, y);
    case GgmlType::Q4_K: return decode_k45(p, y, false);
    case GgmlType::Q5_K: return decode_k45(p, y, true);
    case GgmlType::Q6_K: return decode_q6k(p, y);
    case GgmlType::IQ4_XS: return decode_iq4xs(p, y);
    default: fail("not a 256-value ggml block type: ", ggml_type_name(uint32_t(t)));
  }
}

}  // namespace

bool ggml_can_decode(uint32_t type) {
  switch (GgmlType(type)) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q8_0:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
    case GgmlType::IQ4_NL:
    case GgmlType::IQ4_XS: return true;
    default: return false;
  }
}

void ggml_decode_row(uint32_t type, const uint8_t* p, int64_t cols, float* out) {
  switch (GgmlType(type)) {
    case GgmlType::F32: std::memcpy(out, p, size_t(cols) * 4); return;
    case GgmlType::F16:
      for (int64_t c = 0; c < cols; ++c) out[c] = h16(p + 2 * c);
      return;
    case GgmlType::BF16:
      for (int64_t c = 0; c < cols; ++c) {
        uint16_t v;
        std::memcpy(&v, p + 2 * c, 2);
        out[c] = bf16_to_f32(v);
      }
      return;
    case GgmlType::Q8_0:  // {f16 d; i8 q[32]}
      for (int64_t b = 0; b < cols / 32; ++b, p += 34)
        for (int j = 0; j < 32; ++j) out[b * 32 + j] = h16(p) * float(int8_t(p[2 + j]));
      return;
    case GgmlType::Q4_0:  // {f16 d; u8 qs[16]}: x = d * (q - 8)
    case GgmlType::Q4_1:  // {f16 d, m; u8 qs[16]}: x = d * q + m
    case GgmlType::Q5_0:  // {f16 d; u32 qh; u8 qs[16]}: 5th bits in qh, x = d * (q - 16)
    case GgmlType::Q5_1: {  // {f16 d, m; u32 qh; u8 qs[16]}: x = d * q + m
      const GgmlType t = GgmlType(type);
      const bool has_min = t == GgmlType::Q4_1 || t == GgmlType::Q5_1, five = t == GgmlType::Q5_0 || t == GgmlType::Q5_1;
      const size_t head = 2 + (has_min ? 2 : 0) + (five ? 4 : 0);
      const float offset = has_min ? 0.f : five ? -16.f : -8.f;
      for (int64_t b = 0; b < cols / 32; ++b, p += head + 16) {
        const float d = h16(p), m = has_min ? h16(p + 2) : 0.f;
        uint32_t qh = 0;
        if (five) std::memcpy(&qh, p + head - 4, 4);
        const uint8_t* qs = p + head;
        for (int j = 0; j < 16; ++j) {
          const int h0 = five ? int((qh >> j) & 1) << 4 : 0, h1 = five ? int((qh >> (j + 16)) & 1) << 4 : 0;
          out[b * 32 + j] = d * (float((qs[j] & 15) | h0) + offset) + m;
          out[b * 32 + j + 16] = d * (float((qs[j] >> 4) | h1) + offset) + m;
        }
      }
      return;
    }
    case GgmlType::IQ4_NL:  // {f16 d; u8 qs[16]}: x = d * level
      for (int64_t b = 0; b < cols / 32; ++b, p += 18) decode_iq4_32(p + 2, h16(p), out + b * 32);
      return;
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
    case GgmlType::IQ4_XS: {  // 256-value blocks, of the sizes gguf.cpp's ggml_nbytes knows
      const size_t block = ggml_nbytes(type, 256);
      for (int64_t b = 0; b < cols / 256; ++b) decode_block256(GgmlType(type), p + size_t(b) * block, out + b * 256);
      return;
    }
    default: break;
  }
  fail("cannot decode ggml type ", ggml_type_name(type));
}

}  // namespace elm
