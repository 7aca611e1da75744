// Decoding of ggml tensor rows (GGUF data) to float32: plain types, the 32-value block formats
// (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL), the 256-value K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and
// IQ4_XS, following the block layouts of ggml's reference dequantization. Q8_0 / Q4_0 / Q4_1 are
// normally repacked into elm's formats instead (gguf_import.cpp); the others are decoded.
#pragma once
#include <cstdint>

namespace elm {

bool ggml_can_decode(uint32_t type);
// out[0..cols) = row at `row` (ggml_nbytes(type, cols) bytes). cols must be a multiple of the block.
void ggml_decode_row(uint32_t type, const uint8_t* row, int64_t cols, float* out);

}  // namespace elm
