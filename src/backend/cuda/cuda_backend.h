// The CUDA backend: runs a model's graph on an NVIDIA GPU (ops it cannot run go to the CPU through the
// partitioner). Weights are uploaded once in their stored layouts; KV caches live in device memory;
// decode steps replay captured CUDA graphs. See docs/cuda.md.
#pragma once
#include <memory>

#include "backend/backend.h"

namespace elm {

// The backend opens the device when it prepares its first segment; that throws elm::Error when no CUDA
// device can be used here (the message says why). Partitioning and compiling need no device.
std::unique_ptr<Backend> make_cuda_backend(const RuntimeConfig& config);

// Number of usable CUDA devices (0 without a driver or GPU); never throws.
int cuda_device_count();
// Device memory in use on the current device (all processes), in bytes; 0 when unavailable.
size_t cuda_memory_in_use();

}  // namespace elm
