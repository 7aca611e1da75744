// Test-side GGUF writing, written from the format description (../shared/formats.md) rather than from
// elm's reader: a GGUF v3 writer, reference ggml block quantizers / decoders for Q8_0, Q4_0 and Q4_1,
// and a Hugging Face -> GGUF converter that makes the edits llama.cpp's converter makes (Q/K row
// permutation for "llama", 1 + w for Gemma norms, llama3 RoPE as rope_freqs). Tests use them to build
// GGUF files of the tiny fixtures and check the importer against the fixtures' reference logits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "format/gguf.h"

namespace elm::test {

class GgufWriter {
 public:
  // Metadata; `type` is the GGUF value type, `payload` its encoding (see the helpers).
  void kv(const std::string& key, uint32_t type, const std::vector<uint8_t>& payload);
  void u32(const std::string& key, uint32_t v);
  void i32(const std::string& key, int32_t v);
  void f32(const std::string& key, float v);
  void str(const std::string& key, const std::string& v);
  void boolean(const std::string& key, bool v);
  void strings(const std::string& key, const std::vector<std::string>& v);
  void floats(const std::string& key, const std::vector<float>& v);
  void ints(const std::string& key, const std::vector<int32_t>& v);

  // A tensor with its PyTorch shape (outermost first) and raw data in the ggml type's layout.
  void tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type, std::vector<uint8_t> data);

  std::vector<uint8_t> bytes() const;
  void write(const std::string& path) const;

 private:
  std::vector<uint8_t> kv_;
  uint64_t n_kv_ = 0;
  struct T {
    std::string name;
    std::vector<int64_t> shape;
    GgmlType type;
    std::vector<uint8_t> data;
  };
  std::vector<T> tensors_;
};

// Encodings of single values and strings, for kv().
std::vector<uint8_t> gguf_string(const std::string& s);

// ggml block quantization of x [rows, cols] (cols a multiple of 32), per the block layouts.
std::vector<uint8_t> ggml_quantize(GgmlType type, const float* x, int64_t rows, int64_t cols);
// ggml block decoding: row `r` of a [rows, cols] tensor stored as `type`.
std::vector<float> ggml_decode_row(GgmlType type, const uint8_t* data, int64_t r, int64_t cols);

// Writes the Hugging Face checkpoint in `dir` as a GGUF file the way llama.cpp's converter would, with
// 2-D weights stored as `matrix_type` (F32, F16, Q8_0, Q4_0 or Q4_1) and everything else F32. With
// `decoded`, 2-D weights are quantized to matrix_type and stored as the F32 values the blocks decode
// to: the same model, unquantized. Supports llama (incl. llama3 RoPE), qwen2, qwen3, gemma3_text.
void hf_to_gguf(const std::string& dir, const std::string& out, GgmlType matrix_type = GgmlType::F32,
                bool decoded = false);

}  // namespace elm::test
