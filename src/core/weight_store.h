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

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorView& get(const std::string& name) const;  // throws elm::Error naming the tensor
  const std::map<std::string, TensorView>& all() const { return tensors_; }
  std::map<std::string, std::vector<int64_t>> shapes() const;
  size_t total_bytes() const;

 private:
  std::map<std::string, TensorView> tensors_;
  std::vector<std::shared_ptr<const void>> owners_;
};

}  // namespace elm
