// The portable parts of the quantized matmul: activation quantization (reference), the plain and
// packed weight layouts, and the per-ISA kernel tables.
#include "backend/cpu/qgemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace elm::cpu {

void quantize_row_int8_ref(const float* x, int64_t K, int8_t* q, float* d, int32_t* sum) {
  for (int64_t b = 0; b < K / kActBlock; ++b) {
    const float* xb = x + b * kActBlock;
    float amax = 0;
    for (int64_t j = 0; j < kActBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float id = amax > 0 ? 127.f / amax : 0.f;
    int32_t s = 0;
    for (int64_t j = 0; j < kActBlock; ++j) {
      // |x * id| <= 127 up to rounding; the clamp keeps a rounding error from wrapping.
      const int v = int(std::nearbyint(std::min(127.f, std::max(-127.f, xb[j] * id))));
      q[b * kActBlock + j] = int8_t(v);
      s += v;
    }
    d[b] = amax / 127.f;
    sum[b] = s;
  }
}

QMatrix qmatrix(const TensorView& w) {
  ELM_CHECK(is_quantized(w.dtype), "qmatrix: ", dtype_name(w.dtype), " is not quantized");
  const QuantLayout l = w.quant();
  const auto* base = static_cast<const uint8_t*>(w.data);
  QMatrix m;
  m.type = w.dtype;
  m.n = w.rows();
  m.k = w.cols();
  m.group = w.group;
  m.f32_scales = w.scale_dtype == DType::F32;
  m.quants = base;
  m.scales = base + l.scales_offset;
  m.mins = w.dtype == DType::Q4M ? base + l.mins_offset : nullptr;
  return m;
}

size_t packed_panel_bytes(DType type, int64_t k, int group, bool f32_scales) {
  const size_t blocks = size_t(k / kActBlock), groups = size_t(k / group);
  const size_t quant = type == DType::Q8 ? 512 : 256;  // per block of 32 columns, 16 rows
  const size_t scale = size_t(kPanelRows) * (f32_scales ? 4 : 2) * (type == DType::Q4M ? 2 : 1);
  return blocks * quant + groups * scale;
}

void pack_panels(const QMatrix& w, int64_t p0, int64_t p1, uint8_t* out) {
  const size_t panel_bytes = packed_panel_bytes(w.type, w.k, w.group, w.f32_scales);
  const size_t ssize = w.f32_scales ? 4 : 2;
  const int64_t groups = w.k / w.group, blocks_per_group = w.group / kActBlock;
  const bool q8 = w.type == DType::Q8;
  std::memset(out, 0, size_t(p1 - p0) * panel_bytes);
  for (int64_t p = p0; p < p1; ++p) {
    uint8_t* o = out + size_t(p - p0) * panel_bytes;
    for (int64_t g = 0; g < groups; ++g) {
      for (int64_t bg = 0; bg < blocks_per_group; ++bg) {
        const int64_t kb = g * blocks_per_group + bg;
        for (int64_t lane = 0; lane < kPanelRows; ++lane) {
          const int64_t n = p * kPanelRows + lane;
          if (n >= w.n) {
            if (q8)  // a zero weight is 128 once offset (its scale is 0 anyway)
              for (int c = 0; c < 8; ++c) std::memset(o + c * 64 + lane * 4, 128, 4);
            continue;
          }
          if (q8) {
            const auto* src = reinterpret_cast<const int8_t*>(w.quants) + n * w.k + kb * 32;
            for (int c = 0; c < 8; ++c)
              for (int j = 0; j < 4; ++j) o[c * 64 + lane * 4 + j] = uint8_t(src[4 * c + j] + 128);
          } else {
            // Plain Q4: byte j of a 32-value block holds value j (low) and j + 16 (high).
            const uint8_t* src = w.quants + size_t(n * w.k + kb * 32) / 2;
            auto nib = [&](int k) { return k < 16 ? src[k] & 15 : src[k - 16] >> 4; };
            for (int c = 0; c < 4; ++c)
              for (int j = 0; j < 4; ++j)
                o[c * 64 + lane * 4 + j] = uint8_t(nib(8 * c + j) | nib(8 * c + 4 + j) << 4);
          }
        }
        o += q8 ? 512 : 256;
      }
      // Scales (and mins) of the 16 rows for this group.
      for (const uint8_t* plane : {w.scales, w.mins}) {
        if (!plane) continue;
        for (int64_t lane = 0; lane < kPanelRows; ++lane) {
          const int64_t n = p * kPanelRows + lane;
          if (n < w.n) std::memcpy(o + lane * ssize, plane + size_t(n * groups + g) * ssize, ssize);
        }
        o += kPanelRows * ssize;
      }
    }
  }
}

void unpack_row(const PackedQ& w, int64_t n, float* out) {
  ELM_CHECK(n >= 0 && n < w.n, "row ", n, " of a packed weight with ", w.n, " rows");
  const size_t ssize = w.f32_scales ? 4 : 2;
  const int64_t groups = w.k / w.group, blocks_per_group = w.group / kActBlock, lane = n % kPanelRows;
  const bool q8 = w.type == DType::Q8;
  const uint8_t* o = w.data + size_t(n / kPanelRows) * packed_panel_bytes(w.type, w.k, w.group, w.f32_scales);
  const DType st = w.f32_scales ? DType::F32 : DType::F16;
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* quants = o;
    o += size_t(blocks_per_group) * (q8 ? 512 : 256);
    const float d = load_scale(o, size_t(lane), st);
    o += kPanelRows * ssize;
    float m = 0.f;
    if (w.type == DType::Q4M) {
      m = load_scale(o, size_t(lane), st);
      o += kPanelRows * ssize;
    }
    const float offset = w.type == DType::Q4 ? -8.f : 0.f;
    for (int64_t bg = 0; bg < blocks_per_group; ++bg) {
      const uint8_t* b = quants + bg * (q8 ? 512 : 256);
      float* y = out + (g * blocks_per_group + bg) * kActBlock;
      if (q8) {
        for (int c = 0; c < 8; ++c)
          for (int j = 0; j < 4; ++j) y[4 * c + j] = d * float(int(b[c * 64 + lane * 4 + j]) - 128);
        continue;
      }
      for (int c = 0; c < 4; ++c)
        for (int j = 0; j < 4; ++j) {
          const uint8_t byte = b[c * 64 + lane * 4 + j];
          y[8 * c + j] = d * (float(byte & 15) + offset) + m;
          y[8 * c + 4 + j] = d * (float(byte >> 4) + offset) + m;
        }
    }
  }
}

const QKernels* qkernels(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx512: return &kQKernelsAvx512;
    case Isa::Avx2: return &kQKernelsAvx2;
#endif
#if defined(__aarch64__)
    case Isa::Neon: return &kQKernelsNeon;
#endif
    default: return nullptr;
  }
}

}  // namespace elm::cpu
