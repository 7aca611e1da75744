// The weights of a loaded model: tensor name -> view. Views point into mapped files (kept alive here)
// or into buffers the store owns (tensors computed at load, e.g. RoPE frequency tables).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace elm {

class WeightStore {
 public:
  void add(const std::string& name, const TensorView& view);
  // Stores a float32 tensor the store owns.
  void add_owned(const std::string& name, Shape shape, std::vector<float> values);
  // Stores raw bytes the store owns, described by `view` (view.data is replaced).
  void add_owned_bytes(const std::string& name, TensorView view, std::vector<uint8_t> bytes);
  // Gives a tensor a new shape with the same matrix layout (rows() and cols() unchanged), e.g. a
  // Conv1d kernel [C, 1, K] as [C, K]. Throws elm::Error otherwise.
  void reshape(const std::string& name, Shape shape);
  void keep_alive(std::shared_ptr<const void> owner) { owners_.push_back(std::move(owner)); }
  void keep_mapped(std::shared_ptr<const MappedFile> file) {  // keep_alive, for release_mapped_pages / release_copied
    files_.push_back(file);
    owners_.push_back(std::move(file));
  }
  // MappedFile::release_pages on every file this store keeps alive.
  void release_mapped_pages() const {
    for (const auto& f : files_) f->release_pages();
  }
  // Takes a tensor's pages out of this process's resident set once a backend has its own copy. Pages
  // of a mapped file leave the mapping only (they stay in the page cache, so a later read, such as an
  // embedding lookup of a tied table, or the next process loading the file, costs a minor fault, not
  // a disk read); other memory is paged out (page_out, which never loses data).
  void release_copied(const void* data, size_t bytes) const;

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorView& get(const std::string& name) const;  // throws elm::Error naming the tensor
  const std::map<std::string, TensorView>& all() const { return tensors_; }
  std::map<std::string, std::vector<int64_t>> shapes() const;
  size_t total_bytes() const;

 private:
  std::map<std::string, TensorView> tensors_;
  std::vector<std::shared_ptr<const void>> owners_;
  std::vector<std::shared_ptr<const MappedFile>> files_;
};

}  // namespace elm
