#include "core/weight_store.h"

#include "core/error.h"

namespace elm {

void WeightStore::release_copied(const void* data, size_t bytes) const {
  for (const auto& f : files_)
    if (f->release_pages(data, bytes)) return;
  page_out(data, bytes);
}

void WeightStore::add(const std::string& name, const TensorView& view) {
  ELM_CHECK(!tensors_.count(name), "duplicate tensor '", name, "'");
  tensors_[name] = view;
}

void WeightStore::add_owned(const std::string& name, Shape shape, std::vector<float> values) {
  TensorView v;
  v.dtype = DType::F32;
  v.shape = std::move(shape);
  ELM_CHECK(size_t(v.numel()) == values.size(), "tensor '", name, "': ", values.size(), " values for shape ",
            shape_str(v.shape));
  v.nbytes = values.size() * 4;
  auto buf = std::make_shared<std::vector<float>>(std::move(values));
  v.data = buf->data();
  owners_.push_back(buf);
  add(name, v);
}

void WeightStore::add_owned_bytes(const std::string& name, TensorView view, std::vector<uint8_t> bytes) {
  auto buf = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  view.data = buf->data();
  view.nbytes = buf->size();
  owners_.push_back(buf);
  add(name, view);
}

void WeightStore::reshape(const std::string& name, Shape shape) {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("missing tensor '", name, "'");
  TensorView v = it->second;
  const int64_t rows = v.rows(), cols = v.cols();
  v.shape = std::move(shape);
  ELM_CHECK(v.rows() == rows && v.cols() == cols, "tensor '", name, "' cannot be reshaped from ",
            shape_str(it->second.shape), " to ", shape_str(v.shape));
  it->second = v;
}

const TensorView& WeightStore::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("missing tensor '", name, "'");
  return it->second;
}

std::map<std::string, std::vector<int64_t>> WeightStore::shapes() const {
  std::map<std::string, std::vector<int64_t>> s;
  for (const auto& [k, v] : tensors_) s[k] = v.shape;
  return s;
}

size_t WeightStore::total_bytes() const {
  size_t n = 0;
  for (const auto& [k, v] : tensors_) n += v.nbytes;
  return n;
}

}  // namespace elm
