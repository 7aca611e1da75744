// The Vulkan backend: GLSL compute shaders (shaders/) on any Vulkan 1.2 device, from discrete GPUs to
// Mesa's lavapipe CPU driver. Nodes it cannot run stay on the CPU (the partitioner's fallback).
//
// Environment:
//   ELM_VULKAN_DEVICE     device index or part of its name (default: discrete GPU first, lavapipe last)
//   ELM_VULKAN_SUBGROUPS  0: use the shared-memory reductions even where subgroup operations exist
//   ELM_VULKAN_MATVEC     "rows,blocks[,tpr]": matrix-vector tuning: output rows per row group, 32-value
//                         blocks per invocation (row groups get K / 32 / blocks invocations), or a
//                         fixed number of invocations per row group ("sg": the subgroup size)
//   ELM_VULKAN_INT8       0: decode products of quantized weights with float activations even where the
//                         device has integer dot products (default: int8 activations there)
//   ELM_VULKAN_ATTN_SPLIT cache slots per workgroup of decode attention (runs combined on the device);
//                         0: one workgroup per head scans the whole cache
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace elm {

struct VulkanOptions {
  std::string device;  // as ELM_VULKAN_DEVICE; empty: the environment, then the default choice
  int subgroups = -1;  // 1 on, 0 off, -1 from the environment and the device
  std::string matvec;  // as ELM_VULKAN_MATVEC; empty: the environment, then the device's default
  int shared_x = -1;   // legacy matvec: x in shared memory (as ELM_VULKAN_MATVEC_SHARED_X): 1 on, 0 off, -1 the environment
  int int8 = -1;  // gemv with int8 activations for quantized weights (as ELM_VULKAN_INT8): 1, 0, -1 the environment
                  // (on by default); only on devices with integer dot products
  int legacy_matvec = -1;  // the legacy matvec kernel for every product (as ELM_VULKAN_MATVEC_LEGACY): 1, 0, -1 the environment
  int attn_split = -1;     // decode attention: cache slots per workgroup (as ELM_VULKAN_ATTN_SPLIT), 0 off, -1 the environment
};

// Throws elm::Error when there is no usable Vulkan device.
std::unique_ptr<Backend> make_vulkan_backend(const RuntimeConfig& config, const VulkanOptions& options = {});

// "name (type, subgroups N|off)" of the device a backend made by make_vulkan_backend runs on.
std::string vulkan_device_description(const Backend& backend);

}  // namespace elm
