// safetensors reader: validates the header of untrusted files and hands out zero-copy views into the
// mapping. Sharded checkpoints (model.safetensors.index.json) are opened as one set.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace elm {

class SafetensorsFile {
 public:
  // Throws elm::Error naming the file and the problem: truncated header, bad JSON, unknown dtype,
  // offsets outside the file, overlapping or mis-sized tensors.
  static SafetensorsFile open(const std::string& path);
  // Parses an in-memory image (fuzzing, tests). `bytes` must outlive the result.
  static SafetensorsFile parse(const uint8_t* bytes, size_t size, const std::string& label);

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::shared_ptr<MappedFile> mapping() const { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a Hugging Face model directory: model.safetensors, or the shards listed by
// model.safetensors.index.json. Throws elm::Error when neither exists or a shard is missing.
struct SafetensorsSet {
  std::map<std::string, TensorView> tensors;
  std::vector<std::shared_ptr<MappedFile>> files;
  static SafetensorsSet open_dir(const std::string& dir);
};

// Writes tensors (name -> view; plain dtypes only) as a safetensors file. Throws elm::Error on I/O errors.
void write_safetensors(const std::string& path, const std::map<std::string, TensorView>& tensors);

}  // namespace elm
