// GGUF (llama.cpp's model file) reader: metadata and tensor directory of untrusted files, with
// zero-copy views of the tensor data. Interpretation (architecture, vocabulary, weights) happens in
// gguf_import.cpp and the tokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/mapped_file.h"

namespace elm {

// ggml tensor type ids (the subset with a fixed block layout).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
};
const char* ggml_type_name(uint32_t type);
// Bytes for n elements of a ggml type; Error for unknown types or n not a multiple of the block.
size_t ggml_nbytes(uint32_t type, uint64_t n);

struct GgufTensor {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order: innermost first (reverse of PyTorch's shape)
  uint32_t type = 0;
  uint64_t offset = 0;  // relative to the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  uint64_t numel() const;
};

class GgufFile {
 public:
  // Throws elm::Error naming the file and the problem (bad magic, unsupported version, truncated
  // metadata, absurd counts, tensor data outside the file, misaligned offsets, unknown types).
  static GgufFile open(const std::string& path);
  static GgufFile parse(const uint8_t* bytes, size_t size, const std::string& label);

  uint32_t version = 0;
  size_t alignment = 32;
  // Metadata as JSON: integers, floats, bools, strings, and arrays of them (nested arrays too).
  nlohmann::json meta = nlohmann::json::object();
  std::vector<GgufTensor> tensors;
  std::shared_ptr<MappedFile> file;

  bool has(const std::string& key) const { return meta.contains(key); }
  const GgufTensor* find(const std::string& name) const;
  // Typed metadata access; Error naming the key when missing or of another type.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t def) const;
  double get_float(const std::string& key, double def) const;
  std::string get_string(const std::string& key, const std::string& def = "") const;
};

}  // namespace elm
