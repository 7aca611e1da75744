// 16 x 16 transpose of 32-bit lanes in AVX-512 registers. Only for *_avx512.cpp files.
#pragma once
#include <immintrin.h>

namespace elm::cpu::avx512 {

// On return r[i] holds lane i of every input register (output lane j = input register j).
inline void transpose16x16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // Within each 128-bit lane: 4x4 blocks.
  for (int i = 0; i < 4; ++i) {
    r[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  // r[4i + j], 128-bit lane l: lane j + 4l of registers 4i .. 4i+3. Gather the 128-bit lanes.
  for (int j = 0; j < 4; ++j) {
    t[j] = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x88);  // 128-bit lanes 0, 2 of each
    t[4 + j] = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xdd);  // lanes 1, 3
    t[8 + j] = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x88);
    t[12 + j] = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xdd);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0x88);            // lane j
    r[8 + j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0xdd);        // lane j + 8
    r[4 + j] = _mm512_shuffle_i32x4(t[4 + j], t[12 + j], 0x88);   // lane j + 4
    r[12 + j] = _mm512_shuffle_i32x4(t[4 + j], t[12 + j], 0xdd);  // lane j + 12
  }
}

}  // namespace elm::cpu::avx512
