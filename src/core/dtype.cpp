#include "core/dtype.h"

#include "core/error.h"

namespace elm {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::I8: return 1;
    default: return 0;
  }
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::I8: return "I8";
    case DType::Q8: return "Q8";
    case DType::Q4: return "Q4";
    case DType::Q4M: return "Q4M";
  }
  return "?";
}

DType dtype_from_name(std::string_view n) {
  if (n == "F32") return DType::F32;
  if (n == "F16") return DType::F16;
  if (n == "BF16") return DType::BF16;
  if (n == "I32") return DType::I32;
  if (n == "I8") return DType::I8;
  if (n == "Q8") return DType::Q8;
  if (n == "Q4") return DType::Q4;
  if (n == "Q4M") return DType::Q4M;
  fail("unsupported tensor dtype '", n, "'");
}

DType dtype_from_flag(std::string_view n) {
  if (n == "f32") return DType::F32;
  if (n == "f16") return DType::F16;
  if (n == "bf16") return DType::BF16;
  if (n == "int8") return DType::I8;
  fail("unknown precision '", n, "' (f32, f16, bf16, int8)");
}

QuantLayout quant_layout(DType t, int64_t rows, int64_t cols, int group, DType scale_type) {
  ELM_CHECK(is_quantized(t), "quant_layout: ", dtype_name(t), " is not a quantized type");
  ELM_CHECK(group > 0 && group % 32 == 0, "quantization group size ", group, " is not a positive multiple of 32");
  ELM_CHECK(rows > 0 && cols > 0 && cols % group == 0, "cannot quantize a [", rows, ", ", cols,
            "] matrix in groups of ", group, " (columns must be a multiple of the group)");
  ELM_CHECK(scale_type == DType::F16 || scale_type == DType::F32, "quantization scales must be F16 or F32");
  QuantLayout l;
  size_t r = size_t(rows), c = size_t(cols);
  l.quant_bytes = t == DType::Q8 ? r * c : r * c / 2;
  size_t n_scales = r * (c / size_t(group));
  size_t scale_bytes = n_scales * dtype_size(scale_type);
  l.scales_offset = align_up(l.quant_bytes, kPlaneAlign);
  size_t end = l.scales_offset + scale_bytes;
  if (t == DType::Q4M) {
    l.mins_offset = align_up(end, kPlaneAlign);
    end = l.mins_offset + scale_bytes;
  }
  l.total_bytes = end;
  return l;
}

}  // namespace elm
