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
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return true;
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
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
      for (int64_t b = 0; b < cols / 256; ++b)
        decode_k45(p + size_t(b) * (GgmlType(type) == GgmlType::Q5_K ? 176 : 144), out + b * 256,
                   GgmlType(type) == GgmlType::Q5_K);
      return;
    case GgmlType::Q6_K:
      for (int64_t b = 0; b < cols / 256; ++b) decode_q6k(p + size_t(b) * 210, out + b * 256);
      return;
    default: break;
  }
  fail("cannot decode ggml type ", ggml_type_name(type));
}

}  // namespace elm
