// ggml block decoding: blocks packed here from known quants and scales (bit layouts of ggml's block
// structs) must decode to what the formats mean: x = d * (q - 16), d * q + m, d * sc * q - dmin * m
// per 32-value sub-block (Q4_K, Q5_K), d * sc * (q - 32) per 16-value sub-block (Q6_K).
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/half.h"
#include "format/ggml_blocks.h"
#include "format/gguf.h"

using namespace elm;

namespace {

std::mt19937 rng(42);
int rnd(int n) { return int(rng() % uint32_t(n)); }
void put_f16(std::vector<uint8_t>& b, float v) {
  const uint16_t h = f32_to_f16(v);
  b.push_back(uint8_t(h & 0xff)), b.push_back(uint8_t(h >> 8));
}
float r16(float v) { return f16_to_f32(f32_to_f16(v)); }

std::vector<float> decode(GgmlType t, const std::vector<uint8_t>& b, int64_t cols) {
  EXPECT_EQ(b.size(), ggml_nbytes(uint32_t(t), uint64_t(cols)));
  std::vector<float> out(static_cast<size_t>(cols));
  ggml_decode_row(uint32_t(t), b.data(), cols, out.data());
  return out;
}

}  // namespace

TEST(GgmlBlocks, Q5_0AndQ5_1) {
  for (bool with_min : {false, true}) {
    int q[32];
    for (int& v : q) v = rnd(32);
    const float d = 0.037f, m = -0.52f;
    std::vector<uint8_t> b;
    put_f16(b, d);
    if (with_min) put_f16(b, m);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) qh |= uint32_t(q[j] >> 4) << j | uint32_t(q[j + 16] >> 4) << (j + 16);
    for (int k = 0; k < 4; ++k) b.push_back(uint8_t(qh >> (8 * k)));
    for (int j = 0; j < 16; ++j) b.push_back(uint8_t((q[j] & 15) | (q[j + 16] & 15) << 4));
    const std::vector<float> x = decode(with_min ? GgmlType::Q5_1 : GgmlType::Q5_0, b, 32);
    for (int j = 0; j < 32; ++j) {
      const float expect = with_min ? r16(d) * float(q[j]) + r16(m) : r16(d) * float(q[j] - 16);
      EXPECT_EQ(x[size_t(j)], expect) << j;
    }
  }
}

TEST(GgmlBlocks, Q4_KAndQ5_K) {
  for (bool five : {false, true}) {
    int sc[8], mn[8], q[256];
    for (int j = 0; j < 8; ++j) sc[j] = rnd(64), mn[j] = rnd(64);
    for (int& v : q) v = rnd(five ? 32 : 16);
    const float d = 0.011f, dmin = 0.007f;
    std::vector<uint8_t> b;
    put_f16(b, d);
    put_f16(b, dmin);
    uint8_t s[12];
    for (int j = 0; j < 4; ++j) {
      s[j] = uint8_t(sc[j] | (sc[j + 4] >> 4) << 6);
      s[j + 4] = uint8_t(mn[j] | (mn[j + 4] >> 4) << 6);
      s[j + 8] = uint8_t((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
    b.insert(b.end(), s, s + 12);
    if (five) {
      for (int l = 0; l < 32; ++l) {
        uint8_t h = 0;
        for (int c = 0; c < 4; ++c)
          h |= uint8_t((q[c * 64 + l] >> 4) << (2 * c) | (q[c * 64 + 32 + l] >> 4) << (2 * c + 1));
        b.push_back(h);
      }
    }
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) b.push_back(uint8_t((q[c * 64 + l] & 15) | (q[c * 64 + 32 + l] & 15) << 4));
    const std::vector<float> x = decode(five ? GgmlType::Q5_K : GgmlType::Q4_K, b, 256);
    for (int v = 0; v < 256; ++v) {
      const int sb = v / 32;
      const float expect = r16(d) * float(sc[sb]) * float(q[v]) - r16(dmin) * float(mn[sb]);
      EXPECT_EQ(x[size_t(v)], expect) << (five ? "Q5_K " : "Q4_K ") << v;
    }
  }
}

TEST(GgmlBlocks, Q6_K) {
  int q[256];
  int8_t sc[16];
  for (int& v : q) v = rnd(64);
  for (auto& s : sc) s = int8_t(rnd(255) - 127);
  const float d = 0.0021f;
  std::vector<uint8_t> ql(128), qh(64);
  for (int n = 0; n < 2; ++n)
    for (int l = 0; l < 32; ++l) {
      const int* Q = q + n * 128;
      ql[size_t(n * 64 + l)] = uint8_t((Q[l] & 15) | (Q[l + 64] & 15) << 4);
      ql[size_t(n * 64 + 32 + l)] = uint8_t((Q[l + 32] & 15) | (Q[l + 96] & 15) << 4);
      qh[size_t(n * 32 + l)] = uint8_t((Q[l] >> 4) | (Q[l + 32] >> 4) << 2 | (Q[l + 64] >> 4) << 4 | (Q[l + 96] >> 4) << 6);
    }
  std::vector<uint8_t> b = ql;
  b.insert(b.end(), qh.begin(), qh.end());
  for (int8_t s : sc) b.push_back(uint8_t(s));
  put_f16(b, d);
  const std::vector<float> x = decode(GgmlType::Q6_K, b, 256);
  for (int v = 0; v < 256; ++v) EXPECT_EQ(x[size_t(v)], r16(d) * float(sc[v / 16]) * float(q[v] - 32)) << v;
}

namespace {

// The 2-bit fields of Q2_K and Q3_K as ggml's quantizers write them: in each 128-value half, byte l
// holds values l, l + 32, l + 64, l + 96 at bits 0, 2, 4, 6.
std::vector<uint8_t> pack_2bit(const int* q) {
  std::vector<uint8_t> qs(64);
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const int* Q = q + 128 * h;
      qs[size_t(32 * h + l)] = uint8_t((Q[l] & 3) | (Q[l + 32] & 3) << 2 | (Q[l + 64] & 3) << 4 | (Q[l + 96] & 3) << 6);
    }
  return qs;
}

}  // namespace

TEST(GgmlBlocks, Q2_K) {
  int q[256], sc[16], mn[16];
  for (int& v : q) v = rnd(4);
  for (int j = 0; j < 16; ++j) sc[j] = rnd(16), mn[j] = rnd(16);
  const float d = 0.0123f, dmin = 0.0071f;
  std::vector<uint8_t> b;
  for (int j = 0; j < 16; ++j) b.push_back(uint8_t(sc[j] | mn[j] << 4));
  const std::vector<uint8_t> qs = pack_2bit(q);
  b.insert(b.end(), qs.begin(), qs.end());
  put_f16(b, d);
  put_f16(b, dmin);
  const std::vector<float> x = decode(GgmlType::Q2_K, b, 256);
  for (int v = 0; v < 256; ++v)
    EXPECT_EQ(x[size_t(v)], r16(d) * float(sc[v / 16]) * float(q[v]) - r16(dmin) * float(mn[v / 16])) << v;
}

TEST(GgmlBlocks, Q3_K) {
  int q[256], s[16];  // q in -4..3, scales in -32..31
  for (int& v : q) v = rnd(8) - 4;
  for (int& v : s) v = rnd(64) - 32;
  const float d = 0.0042f;
  // ggml's quantizer: L = q + 4 in 0..7; bit 2 of L goes to hmask[v % 32] at bit v / 32, the rest to qs.
  int low[256];
  std::vector<uint8_t> hmask(32, 0);
  for (int v = 0; v < 256; ++v) {
    const int L = q[v] + 4;
    if (L > 3) hmask[size_t(v % 32)] |= uint8_t(1 << (v / 32));
    low[v] = L & 3;
  }
  // Scales stored as s + 32 in 6 bits: low nibbles in bytes 0-7 (sub-blocks 8-15 in the high nibbles),
  // the two high bits of sub-block j in byte 8 + j % 4 at bit 2 * (j / 4).
  uint8_t scales[12] = {};
  for (int j = 0; j < 16; ++j) {
    const int l = s[j] + 32;
    if (j < 8) scales[j] = uint8_t(l & 15);
    else scales[j - 8] |= uint8_t((l & 15) << 4);
    scales[8 + j % 4] |= uint8_t((l >> 4) << (2 * (j / 4)));
  }
  std::vector<uint8_t> b = hmask;
  const std::vector<uint8_t> qs = pack_2bit(low);
  b.insert(b.end(), qs.begin(), qs.end());
  b.insert(b.end(), scales, scales + 12);
  put_f16(b, d);
  const std::vector<float> x = decode(GgmlType::Q3_K, b, 256);
  for (int v = 0; v < 256; ++v) EXPECT_EQ(x[size_t(v)], r16(d) * float(s[v / 16]) * float(q[v])) << v;
}

// IQ4_NL / IQ4_XS levels: ggml's kvalues_iq4nl, written out here from the format's definition.
constexpr int kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

TEST(GgmlBlocks, IQ4_NL) {
  int idx[64];
  for (int& v : idx) v = rnd(16);
  const float d[2] = {0.0031f, -0.0007f};
  std::vector<uint8_t> b;
  for (int blk = 0; blk < 2; ++blk) {
    put_f16(b, d[blk]);
    for (int j = 0; j < 16; ++j) b.push_back(uint8_t(idx[32 * blk + j] | idx[32 * blk + j + 16] << 4));
  }
  const std::vector<float> x = decode(GgmlType::IQ4_NL, b, 64);
  for (int v = 0; v < 64; ++v) EXPECT_EQ(x[size_t(v)], r16(d[v / 32]) * float(kLevels[idx[v]])) << v;
}

TEST(GgmlBlocks, IQ4_XS) {
  int idx[256], s[8];
  for (int& v : idx) v = rnd(16);
  for (int& v : s) v = rnd(64) - 32;
  const float d = 0.0009f;
  std::vector<uint8_t> b;
  put_f16(b, d);
  uint16_t scales_h = 0;
  uint8_t scales_l[4] = {};
  for (int ib = 0; ib < 8; ++ib) {
    const int l = s[ib] + 32;
    scales_l[ib / 2] |= uint8_t((l & 15) << (4 * (ib % 2)));
    scales_h |= uint16_t((l >> 4) << (2 * ib));
  }
  b.push_back(uint8_t(scales_h & 0xff)), b.push_back(uint8_t(scales_h >> 8));
  b.insert(b.end(), scales_l, scales_l + 4);
  for (int ib = 0; ib < 8; ++ib)
    for (int j = 0; j < 16; ++j) b.push_back(uint8_t(idx[32 * ib + j] | idx[32 * ib + j + 16] << 4));
  const std::vector<float> x = decode(GgmlType::IQ4_XS, b, 256);
  for (int v = 0; v < 256; ++v) EXPECT_EQ(x[size_t(v)], r16(d) * float(s[v / 32]) * float(kLevels[idx[v]])) << v;
}
