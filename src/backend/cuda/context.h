// What the segments of one CUDA backend share: the device, one stream (steps of different segments run
// in order), the uploaded weights (each tensor once, even when several segments or ops read it, like a
// tied embedding and output head) and the KV caches (an attention state may be read by several segments).
#pragma once
#include <map>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "backend/cuda/device.h"
#include "backend/cuda/kernels.h"

namespace elm::cuda {

// One attention state's cache; see kernels.h KvView for the layout. Ring and capacity follow
// cpu/kv_cache.h exactly: a window shorter than the context minus a batch is a ring of window + max_batch.
struct KvState {
  DeviceBuffer k, v, pos;
  KvView view;
  size_t bytes() const { return k.size() + v.size() + pos.size(); }
};

class Context {
 public:
  explicit Context(const RuntimeConfig& config);

  const RuntimeConfig& config() const { return config_; }
  cudaStream_t stream() const { return stream_.get(); }

  // A weight matrix in its stored layout, uploaded on first use.
  DeviceWeight matrix(const WeightStore& w, const std::string& name);
  // A small weight (norm scales, biases, frequency tables) as float32, uploaded on first use.
  const float* vector(const WeightStore& w, const std::string& name);
  // The cache of graph state `id` (a "kv" state with `attrs`), created on first use.
  KvState& kv_state(int64_t id, const Attrs& attrs, bool& created);

  size_t weight_bytes() const { return weight_bytes_; }

 private:
  RuntimeConfig config_;
  Stream stream_;
  std::map<std::string, std::pair<DeviceBuffer, DeviceWeight>> matrices_;
  std::map<std::string, DeviceBuffer> vectors_;
  std::map<int64_t, std::unique_ptr<KvState>> kv_;
  size_t weight_bytes_ = 0;
};

}  // namespace elm::cuda
