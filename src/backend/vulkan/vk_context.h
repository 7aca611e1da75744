// The Vulkan device elm computes on: instance, physical device choice, logical device, one compute queue,
// and the pipelines built on it. One Context per device is shared by every backend instance of the
// process (pipelines are compiled once; on lavapipe that is most of the start-up time).
#pragma once
#include <vulkan/vulkan.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"

namespace elm::vk {

// Throws elm::Error naming the failed call.
void check(VkResult r, const char* what);
#define ELM_VK(call) ::elm::vk::check((call), #call)

// The binding numbers of the one descriptor-set layout every pipeline uses (shaders/common.glsl).
enum Binding : uint32_t {
  kBindW = 0, kBindX, kBindY, kBindY1, kBindY2, kBindR, kBindV0, kBindV1, kBindStep, kBindKC, kBindVC, kBindPos,
  kBindingCount
};
constexpr uint32_t kPushBytes = 128;  // the smallest maxPushConstantsSize Vulkan allows

struct DeviceInfo {
  std::string name;
  VkPhysicalDeviceType type = VK_PHYSICAL_DEVICE_TYPE_OTHER;
  uint32_t api_version = 0;
  uint32_t subgroup_size = 0;
  bool subgroup_arithmetic = false;  // subgroupAdd/Max in compute shaders
  uint64_t max_storage_range = 0;    // bytes one storage-buffer binding may cover
  uint64_t min_storage_align = 16;
  uint32_t max_shared_memory = 0;
  uint32_t max_workgroup_size = 128;  // maxComputeWorkGroupInvocations (Vulkan guarantees 128)
  uint32_t max_group_count_x = 65535, max_group_count_y = 65535;
  bool unified_memory = false;  // device-local memory the host can map (integrated GPUs, lavapipe)
  float timestamp_period = 0;   // ns per timestamp tick; 0: no timestamps on compute queues
  // shaderIntegerDotProduct (Vulkan 1.3 core, or VK_KHR_shader_integer_dot_product): OpSDot on packed
  // 4x8-bit integers. Enabled at device creation where present (gemv_i8.spv needs it).
  bool integer_dot_product = false;
  bool integer_dot_product_ext = false;  // ... through the extension (enabled by name)
  bool integer_dot_product_fast = false; // the driver says 4x8-bit packed signed dot products are accelerated
};

class Context {
 public:
  // The context of the device named by `selector` (a device index, or part of a device name,
  // case-insensitive); empty: ELM_VULKAN_DEVICE, else the first discrete GPU, then integrated,
  // virtual and CPU devices (lavapipe). Throws elm::Error when Vulkan or a usable device is missing.
  static std::shared_ptr<Context> get(const std::string& selector = "");
  // Every Vulkan 1.2 device of this machine, in enumeration order ("" when Vulkan is unavailable).
  static std::vector<DeviceInfo> list_devices();

  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  VkDevice device() const { return device_; }
  VkPhysicalDevice physical() const { return phys_; }
  uint32_t queue_family() const { return family_; }
  const DeviceInfo& info() const { return info_; }

  // A memory type index with all of `need` (and as many of `prefer` as possible); -1 when none.
  int memory_type(uint32_t type_bits, VkMemoryPropertyFlags need, VkMemoryPropertyFlags prefer = 0) const;

  VkDescriptorSetLayout set_layout() const { return set_layout_; }
  VkPipelineLayout pipeline_layout() const { return pipeline_layout_; }
  // A compute pipeline of this SPIR-V with specialization constants 0..n-1 = spec; built once, cached.
  VkPipeline pipeline(std::span<const uint32_t> spirv, std::span<const uint32_t> spec);

  // Submits one command buffer and waits for it (queue access is serialized across threads).
  void submit_wait(VkCommandBuffer cb, VkFence fence);
  // Records with `record` into a transient command buffer, submits it and waits.
  template <class F>
  void run_once(F&& record);

 private:
  Context() = default;
  void init(VkInstance instance, VkPhysicalDevice phys, const DeviceInfo& info);
  VkCommandBuffer begin_once();
  void end_once(VkCommandBuffer cb);

  VkInstance instance_ = VK_NULL_HANDLE;
  VkPhysicalDevice phys_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t family_ = 0;
  DeviceInfo info_;
  VkPhysicalDeviceMemoryProperties mem_props_{};
  VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
  VkPipelineLayout pipeline_layout_ = VK_NULL_HANDLE;
  VkPipelineCache pipeline_cache_ = VK_NULL_HANDLE;
  std::mutex pipelines_mutex_, queue_mutex_, once_mutex_;
  std::map<std::pair<uint64_t, std::vector<uint32_t>>, VkPipeline> pipelines_;
  std::vector<VkShaderModule> modules_;
  VkCommandPool once_pool_ = VK_NULL_HANDLE;
  VkFence once_fence_ = VK_NULL_HANDLE;
};

template <class F>
void Context::run_once(F&& record) {
  std::lock_guard<std::mutex> lock(once_mutex_);
  VkCommandBuffer cb = begin_once();
  record(cb);
  end_once(cb);
}

// A global memory barrier between compute/transfer stages: earlier writes become visible to later reads
// and writes.
void barrier(VkCommandBuffer cb, VkPipelineStageFlags src = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
             VkPipelineStageFlags dst = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
             VkAccessFlags src_access = VK_ACCESS_SHADER_WRITE_BIT,
             VkAccessFlags dst_access = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);

}  // namespace elm::vk
