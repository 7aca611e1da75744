#include "backend/cuda/context.h"

#include <algorithm>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace elm::cuda {

Context::Context(const RuntimeConfig& config) : config_(config) {}

DeviceWeight Context::matrix(const WeightStore& w, const std::string& name) {
  auto it = matrices_.find(name);
  if (it != matrices_.end()) return it->second.second;
  const TensorView& t = w.get(name);
  DeviceBuffer buf(t.nbytes);
  ELM_CUDA_CHECK(cudaMemcpy(buf.get(), t.data, t.nbytes, cudaMemcpyHostToDevice));
  page_out(t.data, t.nbytes);  // the host copy is not read again by this backend
  DeviceWeight d;
  d.data = buf.as<uint8_t>();
  d.rows = t.rows(), d.cols = t.cols();
  d.dtype = t.dtype;
  if (is_quantized(t.dtype)) {
    const QuantLayout l = t.quant();
    d.group = t.group, d.scale_f32 = t.scale_dtype == DType::F32;
    d.scales_offset = int64_t(l.scales_offset), d.mins_offset = int64_t(l.mins_offset);
  }
  weight_bytes_ += t.nbytes;
  matrices_.emplace(name, std::make_pair(std::move(buf), d));
  return d;
}

const float* Context::vector(const WeightStore& w, const std::string& name) {
  auto it = vectors_.find(name);
  if (it != vectors_.end()) return it->second.as<float>();
  const std::vector<float> v = to_f32(w.get(name));
  DeviceBuffer buf(v.size() * 4);
  ELM_CUDA_CHECK(cudaMemcpy(buf.get(), v.data(), v.size() * 4, cudaMemcpyHostToDevice));
  weight_bytes_ += buf.size();
  return vectors_.emplace(name, std::move(buf)).first->second.as<float>();
}

KvState& Context::kv_state(int64_t id, const Attrs& a, bool& created) {
  auto it = kv_.find(id);
  created = it == kv_.end();
  if (!created) return *it->second;
  const int64_t window = a.i("window"), n_ctx = config_.n_ctx, max_batch = config_.max_batch;
  auto s = std::make_unique<KvState>();
  KvView& v = s->view;
  v.cap = int(window > 0 ? std::min(n_ctx, window + max_batch) : n_ctx);
  v.ring = window > 0 && window + max_batch < n_ctx;
  v.kv_heads = int(a.i("kv_heads"));
  v.head_dim = int(a.i("head_dim"));
  v.v_head_dim = int(a.i("v_head_dim", v.head_dim));
  // F16 caches when asked for; F32 otherwise (int8 caches are not implemented on CUDA: F32, like the CPU).
  v.half = config_.kv_dtype == DType::F16;
  const size_t elem = v.half ? 2 : 4;
  const size_t rows = size_t(config_.max_seqs) * size_t(v.cap) * size_t(v.kv_heads);
  s->k = DeviceBuffer(rows * size_t(v.head_dim) * elem);
  s->v = DeviceBuffer(rows * size_t(v.v_head_dim) * elem);
  s->pos = DeviceBuffer(size_t(config_.max_seqs) * size_t(v.cap) * 4);
  // Zeroed values (masked slots are multiplied by 0, never by stale garbage) and empty positions.
  ELM_CUDA_CHECK(cudaMemset(s->k.get(), 0, s->k.size()));
  ELM_CUDA_CHECK(cudaMemset(s->v.get(), 0, s->v.size()));
  ELM_CUDA_CHECK(cudaMemset(s->pos.get(), 0xFF, s->pos.size()));
  v.k = s->k.get(), v.v = s->v.get(), v.pos = s->pos.as<int32_t>();
  return *kv_.emplace(id, std::move(s)).first->second;
}

}  // namespace elm::cuda
