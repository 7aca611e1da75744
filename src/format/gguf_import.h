// GGUF import: a llama.cpp model file read as the Hugging Face checkpoint it was converted from, so
// that the same family builders make its graph. The metadata becomes a config.json, tensor names
// become HF names, and tensor data becomes elm formats:
//   F32, F16, BF16            as they are (used in place from the mapping when nothing changes)
//   Q8_0 -> Q8, Q4_0 -> Q4, Q4_1 -> Q4M   group 32, f16 scales: the same numbers, repacked into planes
//   Q5_0, Q5_1, Q2_K-Q6_K, IQ4_NL, IQ4_XS  decoded to F16 (no lossless elm counterpart)
// and llama.cpp's conversion edits are undone: the Q/K row permutation of "llama" models, the 1 added
// to Gemma's norm weights, llama3 RoPE scaling stored as a rope_freqs tensor.
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "format/gguf.h"

namespace elm {

struct Model;

struct GgufImport {
  // How one HF tensor is made from the file.
  struct Tensor {
    int64_t src = -1;            // index into gguf.tensors; -1 for tensors computed at import
    TensorView desc;             // the result's format and shape (data null)
    int64_t permute_heads = 0;   // undo llama.cpp's Q/K row permutation over this many heads
    float add = 0;               // added to every value (Gemma norms)
    std::vector<float> values;   // computed tensors (RoPE frequency tables)
  };

  GgufFile gguf;
  std::string architecture;  // general.architecture
  nlohmann::json config;     // the config.json it implies
  std::map<std::string, Tensor> tensors;  // by HF name

  // Reads the metadata and tensor directory and maps them; no tensor data is touched. Throws
  // elm::Error for unsupported architectures and tensor types, and inconsistent metadata.
  static GgufImport open(const std::string& path);
  static GgufImport from(GgufFile gguf);

  // The tensor's bytes in its elm format: a view into the mapping when the file stores it that way,
  // otherwise converted into `buf` (the view then points into buf).
  TensorView materialize(const Tensor& t, std::vector<uint8_t>& buf) const;
  // The tokenizer.* metadata (vocabulary, merges, special ids, chat template), as Tokenizer::from_gguf
  // takes it.
  nlohmann::json tokenizer_metadata() const;
  // The model without weight data: graph, info, chat template, tokenizer. Weights are descriptions
  // (TensorView data null) unless `with_data`, in which case every tensor is materialized.
  std::shared_ptr<Model> model(bool with_data) const;
};

std::shared_ptr<Model> load_gguf(const std::string& path);

}  // namespace elm
