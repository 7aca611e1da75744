#include "core/tensor.h"

#include <cstring>
#include <sstream>

#include "core/error.h"
#include "core/half.h"

namespace elm {

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

int64_t TensorView::rows() const {
  int64_t r = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) r *= shape[i];
  return r;
}

int64_t TensorView::cols() const { return shape.empty() ? 1 : shape.back(); }

size_t tensor_nbytes(DType t, const Shape& shape, int group, DType scale_dtype) {
  // Guard against absurd shapes from untrusted files before multiplying.
  int64_t n = 1;
  for (int64_t d : shape) {
    ELM_CHECK(d >= 0 && d < (int64_t(1) << 40), "tensor dimension ", d, " is out of range in ", shape_str(shape));
    ELM_CHECK(d == 0 || n <= (int64_t(1) << 42) / d, "tensor shape ", shape_str(shape), " is too large");
    n *= d;
  }
  if (!is_quantized(t)) return size_t(n) * dtype_size(t);
  ELM_CHECK(!shape.empty(), "a quantized tensor needs at least one dimension");
  int64_t cols = shape.back();
  int64_t rows = cols ? n / cols : 0;
  return quant_layout(t, rows, cols, group, scale_dtype).total_bytes;
}

float load_scale(const uint8_t* base, size_t index, DType st) {
  if (st == DType::F32) {
    float f;
    std::memcpy(&f, base + index * 4, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, base + index * 2, 2);
  return f16_to_f32(h);
}

void dequantize_row(const TensorView& t, int64_t r, float* out) {
  const int64_t C = t.cols();
  const auto* base = static_cast<const uint8_t*>(t.data);
  switch (t.dtype) {
    case DType::F32: std::memcpy(out, base + size_t(r * C) * 4, size_t(C) * 4); return;
    case DType::F16: {
      const auto* p = reinterpret_cast<const uint16_t*>(base) + r * C;
      for (int64_t c = 0; c < C; ++c) out[c] = f16_to_f32(p[c]);
      return;
    }
    case DType::BF16: {
      const auto* p = reinterpret_cast<const uint16_t*>(base) + r * C;
      for (int64_t c = 0; c < C; ++c) out[c] = bf16_to_f32(p[c]);
      return;
    }
    case DType::I32: {
      const auto* p = reinterpret_cast<const int32_t*>(base) + r * C;
      for (int64_t c = 0; c < C; ++c) out[c] = float(p[c]);
      return;
    }
    case DType::I8: {
      const auto* p = reinterpret_cast<const int8_t*>(base) + r * C;
      for (int64_t c = 0; c < C; ++c) out[c] = float(p[c]);
      return;
    }
    case DType::Q8:
    case DType::Q4:
    case DType::Q4M: {
      const QuantLayout l = t.quant();
      const int64_t G = t.group, n_groups = C / G;
      const uint8_t* scales = base + l.scales_offset;
      const uint8_t* mins = base + l.mins_offset;
      for (int64_t g = 0; g < n_groups; ++g) {
        const size_t si = size_t(r * n_groups + g);
        const float d = load_scale(scales, si, t.scale_dtype);
        float* o = out + g * G;
        if (t.dtype == DType::Q8) {
          const auto* q = reinterpret_cast<const int8_t*>(base) + r * C + g * G;
          for (int64_t j = 0; j < G; ++j) o[j] = d * float(q[j]);
          continue;
        }
        const float m = t.dtype == DType::Q4M ? load_scale(mins, si, t.scale_dtype) : 0.f;
        const float offset = t.dtype == DType::Q4 ? -8.f : 0.f;
        const uint8_t* q = base + size_t(r * C + g * G) / 2;
        for (int64_t b = 0; b < G / 32; ++b) {
          for (int j = 0; j < 16; ++j) {
            const uint8_t byte = q[b * 16 + j];
            o[b * 32 + j] = d * (float(byte & 15) + offset) + m;
            o[b * 32 + j + 16] = d * (float(byte >> 4) + offset) + m;
          }
        }
      }
      return;
    }
  }
  fail("dequantize_row: unsupported dtype");
}

std::vector<float> to_f32(const TensorView& t) {
  std::vector<float> out(size_t(t.numel()));
  const int64_t R = t.rows(), C = t.cols();
  for (int64_t r = 0; r < R; ++r) dequantize_row(t, r, out.data() + r * C);
  return out;
}

}  // namespace elm
