#include "backend/vulkan/vk_context.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

namespace elm::vk {

void check(VkResult r, const char* what) {
  if (r != VK_SUCCESS) fail("Vulkan: ", what, " failed (VkResult ", int(r), ")");
}

namespace {

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

// The Vulkan version the instance was created for: 1.3 where the loader has it (core 1.3 features such
// as integer dot products are usable on 1.3 devices only then), else 1.2.
uint32_t g_instance_api = VK_API_VERSION_1_2;

VkInstance create_instance() {
  uint32_t version = 0;
  if (vkEnumerateInstanceVersion(&version) != VK_SUCCESS || version < VK_API_VERSION_1_2)
    fail("Vulkan 1.2 is not available (the loader reports ", VK_VERSION_MAJOR(version), ".", VK_VERSION_MINOR(version),
         ")");
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "elm";
  app.pEngineName = "elm";
  g_instance_api = version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2;
  app.apiVersion = g_instance_api;
  VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  ci.pApplicationInfo = &app;
  // ELM_VULKAN_VALIDATION=1 turns on the Khronos validation layer when it is installed (development).
  const char* layer = "VK_LAYER_KHRONOS_validation";
  if (env_flag("ELM_VULKAN_VALIDATION")) {
    uint32_t n = 0;
    vkEnumerateInstanceLayerProperties(&n, nullptr);
    std::vector<VkLayerProperties> layers(n);
    vkEnumerateInstanceLayerProperties(&n, layers.data());
    for (const auto& l : layers)
      if (std::strcmp(l.layerName, layer) == 0) ci.enabledLayerCount = 1, ci.ppEnabledLayerNames = &layer;
  }
  VkInstance instance = VK_NULL_HANDLE;
  const VkResult r = vkCreateInstance(&ci, nullptr, &instance);
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER) fail("no Vulkan driver is installed");
  check(r, "vkCreateInstance");
  return instance;
}

DeviceInfo describe(VkPhysicalDevice pd) {
  VkPhysicalDeviceSubgroupProperties sg{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
  VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  p2.pNext = &sg;
  vkGetPhysicalDeviceProperties2(pd, &p2);
  const VkPhysicalDeviceProperties& p = p2.properties;
  DeviceInfo d;
  d.name = p.deviceName;
  d.type = p.deviceType;
  d.api_version = p.apiVersion;
  d.subgroup_size = sg.subgroupSize;
  d.subgroup_arithmetic = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                          (sg.supportedOperations & VK_SUBGROUP_FEATURE_BASIC_BIT) &&
                          (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
  d.max_storage_range = p.limits.maxStorageBufferRange;
  d.min_storage_align = std::max<uint64_t>(p.limits.minStorageBufferOffsetAlignment, 4);
  d.max_shared_memory = p.limits.maxComputeSharedMemorySize;
  d.max_workgroup_size = std::min(p.limits.maxComputeWorkGroupInvocations, p.limits.maxComputeWorkGroupSize[0]);
  d.max_group_count_x = p.limits.maxComputeWorkGroupCount[0];
  d.max_group_count_y = p.limits.maxComputeWorkGroupCount[1];
  if (p.limits.timestampComputeAndGraphics) d.timestamp_period = p.limits.timestampPeriod;
  VkPhysicalDeviceMemoryProperties mp;
  vkGetPhysicalDeviceMemoryProperties(pd, &mp);
  const VkMemoryPropertyFlags mappable_local = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT |
                                               VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  const bool shared_memory_device =
      p.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU || p.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU;
  for (uint32_t i = 0; i < mp.memoryTypeCount; ++i)
    if ((mp.memoryTypes[i].propertyFlags & mappable_local) == mappable_local && shared_memory_device)
      d.unified_memory = true;
  // Integer dot products: the feature structure may only be chained where the extension or Vulkan 1.3
  // (device and instance) makes it known.
  uint32_t n_ext = 0;
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n_ext, nullptr);
  std::vector<VkExtensionProperties> exts(n_ext);
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n_ext, exts.data());
  for (const auto& e : exts)
    if (std::strcmp(e.extensionName, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME) == 0)
      d.integer_dot_product_ext = true;
  const bool core13 = p.apiVersion >= VK_API_VERSION_1_3 && g_instance_api >= VK_API_VERSION_1_3;
  if (core13) d.integer_dot_product_ext = false;  // core: nothing to enable by name
  if (core13 || d.integer_dot_product_ext) {
    VkPhysicalDeviceShaderIntegerDotProductFeatures idf{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    f2.pNext = &idf;
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    d.integer_dot_product = idf.shaderIntegerDotProduct == VK_TRUE;
    VkPhysicalDeviceShaderIntegerDotProductProperties idp{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES};
    VkPhysicalDeviceProperties2 pp{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    pp.pNext = &idp;
    vkGetPhysicalDeviceProperties2(pd, &pp);
    d.integer_dot_product_fast = idp.integerDotProduct4x8BitPackedSignedAccelerated == VK_TRUE;
  }
  if (!d.integer_dot_product) d.integer_dot_product_ext = false;
  return d;
}

// Why a device cannot run elm's shaders, or "" when it can.
std::string unusable(VkPhysicalDevice pd, const DeviceInfo& d) {
  if (d.api_version < VK_API_VERSION_1_2) return "Vulkan 1.2 is required";
  VkPhysicalDeviceProperties p;
  vkGetPhysicalDeviceProperties(pd, &p);
  if (p.limits.maxPerStageDescriptorStorageBuffers < kBindingCount) return "too few storage buffers per stage";
  if (p.limits.maxPushConstantsSize < kPushBytes) return "push constants too small";
  if (p.limits.maxComputeSharedMemorySize < 32768) return "less than 32 KiB of shared memory";
  if (p.limits.maxComputeWorkGroupInvocations < 256) return "workgroups of 256 invocations are not supported";
  uint32_t n = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, nullptr);
  std::vector<VkQueueFamilyProperties> q(n);
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q.data());
  for (const auto& f : q)
    if (f.queueFlags & VK_QUEUE_COMPUTE_BIT) return "";
  return "no compute queue";
}

int type_rank(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
  }
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<VkPhysicalDevice> physical_devices(VkInstance instance) {
  uint32_t n = 0;
  check(vkEnumeratePhysicalDevices(instance, &n, nullptr), "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> devs(n);
  check(vkEnumeratePhysicalDevices(instance, &n, devs.data()), "vkEnumeratePhysicalDevices");
  return devs;
}

uint64_t fnv1a(std::span<const uint32_t> words) {
  uint64_t h = 1469598103934665603ull;
  for (uint32_t w : words) {
    for (int b = 0; b < 4; ++b) {
      h ^= (w >> (8 * b)) & 0xffu;
      h *= 1099511628211ull;
    }
  }
  return h;
}

}  // namespace

std::vector<DeviceInfo> Context::list_devices() {
  std::vector<DeviceInfo> out;
  try {
    VkInstance instance = create_instance();
    for (VkPhysicalDevice pd : physical_devices(instance)) out.push_back(describe(pd));
    vkDestroyInstance(instance, nullptr);
  } catch (const Error&) {
  }
  return out;
}

std::shared_ptr<Context> Context::get(const std::string& selector_arg) {
  static std::mutex m;
  // Contexts live until the process exits: destroying devices from static destructors races the
  // drivers' own teardown, so they are deliberately never destroyed.
  static auto* contexts = new std::map<std::string, std::shared_ptr<Context>>();
  std::lock_guard<std::mutex> lock(m);
  std::string selector = selector_arg;
  if (selector.empty())
    if (const char* e = std::getenv("ELM_VULKAN_DEVICE")) selector = e;

  VkInstance instance = create_instance();
  const std::vector<VkPhysicalDevice> devs = physical_devices(instance);
  std::vector<DeviceInfo> infos;
  for (VkPhysicalDevice pd : devs) infos.push_back(describe(pd));
  if (devs.empty()) {
    vkDestroyInstance(instance, nullptr);
    fail("no Vulkan device found (a GPU driver, or mesa-vulkan-drivers for the lavapipe CPU device, is needed)");
  }
  std::string why;
  int chosen = -1;
  if (!selector.empty()) {
    const bool numeric = selector.size() <= 4 &&
                         std::all_of(selector.begin(), selector.end(), [](char c) { return std::isdigit(c); });
    for (size_t i = 0; i < devs.size() && chosen < 0; ++i)
      if (numeric ? std::stoul(selector) == i : lower(infos[i].name).find(lower(selector)) != std::string::npos)
        chosen = int(i);
    if (chosen < 0) {
      vkDestroyInstance(instance, nullptr);
      std::string names;
      for (size_t i = 0; i < infos.size(); ++i) names += cat(i ? ", " : "", i, ": ", infos[i].name);
      fail("no Vulkan device matches '", selector, "' (devices: ", names, ")");
    }
    why = unusable(devs[size_t(chosen)], infos[size_t(chosen)]);
  } else {
    for (size_t i = 0; i < devs.size(); ++i) {
      const std::string w = unusable(devs[i], infos[i]);
      if (!w.empty()) {
        why = infos[i].name + ": " + w;
        continue;
      }
      if (chosen < 0 || type_rank(infos[i].type) < type_rank(infos[size_t(chosen)].type)) chosen = int(i);
    }
    if (chosen >= 0) why.clear();
  }
  if (chosen < 0 || !why.empty()) {
    vkDestroyInstance(instance, nullptr);
    fail("no usable Vulkan device (", why, ")");
  }
  const std::string key = cat(chosen);
  auto it = contexts->find(key);
  if (it != contexts->end()) {
    vkDestroyInstance(instance, nullptr);
    return it->second;
  }
  std::shared_ptr<Context> ctx(new Context());
  ctx->init(instance, devs[size_t(chosen)], infos[size_t(chosen)]);
  (*contexts)[key] = ctx;
  return ctx;
}

void Context::init(VkInstance instance, VkPhysicalDevice phys, const DeviceInfo& info) {
  instance_ = instance;
  phys_ = phys;
  info_ = info;
  vkGetPhysicalDeviceMemoryProperties(phys_, &mem_props_);

  uint32_t n = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(phys_, &n, nullptr);
  std::vector<VkQueueFamilyProperties> families(n);
  vkGetPhysicalDeviceQueueFamilyProperties(phys_, &n, families.data());
  for (uint32_t i = 0; i < n; ++i)
    if (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
      family_ = i;
      break;
    }
  const float priority = 1.0f;
  VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  qci.queueFamilyIndex = family_;
  qci.queueCount = 1;
  qci.pQueuePriorities = &priority;
  VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  dci.queueCreateInfoCount = 1;
  dci.pQueueCreateInfos = &qci;
  VkPhysicalDeviceShaderIntegerDotProductFeatures idf{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
  const char* idp_ext = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
  if (info_.integer_dot_product) {
    idf.shaderIntegerDotProduct = VK_TRUE;
    dci.pNext = &idf;
    if (info_.integer_dot_product_ext) dci.enabledExtensionCount = 1, dci.ppEnabledExtensionNames = &idp_ext;
  }
  ELM_VK(vkCreateDevice(phys_, &dci, nullptr, &device_));
  vkGetDeviceQueue(device_, family_, 0, &queue_);

  std::vector<VkDescriptorSetLayoutBinding> bindings(kBindingCount);
  for (uint32_t b = 0; b < kBindingCount; ++b)
    bindings[b] = {b, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
  VkDescriptorSetLayoutCreateInfo lci{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  lci.bindingCount = kBindingCount;
  lci.pBindings = bindings.data();
  ELM_VK(vkCreateDescriptorSetLayout(device_, &lci, nullptr, &set_layout_));
  VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, kPushBytes};
  VkPipelineLayoutCreateInfo pci{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  pci.setLayoutCount = 1;
  pci.pSetLayouts = &set_layout_;
  pci.pushConstantRangeCount = 1;
  pci.pPushConstantRanges = &range;
  ELM_VK(vkCreatePipelineLayout(device_, &pci, nullptr, &pipeline_layout_));
  VkPipelineCacheCreateInfo cci{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
  ELM_VK(vkCreatePipelineCache(device_, &cci, nullptr, &pipeline_cache_));

  VkCommandPoolCreateInfo cpi{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  cpi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT | VK_COMMAND_POOL_CREATE_TRANSIENT_BIT;
  cpi.queueFamilyIndex = family_;
  ELM_VK(vkCreateCommandPool(device_, &cpi, nullptr, &once_pool_));
  VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  ELM_VK(vkCreateFence(device_, &fci, nullptr, &once_fence_));
}

Context::~Context() {
  if (!device_) return;
  vkDeviceWaitIdle(device_);
  for (auto& [k, p] : pipelines_) vkDestroyPipeline(device_, p, nullptr);
  vkDestroyPipelineCache(device_, pipeline_cache_, nullptr);
  vkDestroyPipelineLayout(device_, pipeline_layout_, nullptr);
  vkDestroyDescriptorSetLayout(device_, set_layout_, nullptr);
  vkDestroyFence(device_, once_fence_, nullptr);
  vkDestroyCommandPool(device_, once_pool_, nullptr);
  vkDestroyDevice(device_, nullptr);
  vkDestroyInstance(instance_, nullptr);
}

int Context::memory_type(uint32_t bits, VkMemoryPropertyFlags need, VkMemoryPropertyFlags prefer) const {
  int best = -1, best_score = -1;
  for (uint32_t i = 0; i < mem_props_.memoryTypeCount; ++i) {
    const VkMemoryPropertyFlags f = mem_props_.memoryTypes[i].propertyFlags;
    if (!(bits & (1u << i)) || (f & need) != need) continue;
    const int score = __builtin_popcount(f & prefer);
    if (score > best_score) best = int(i), best_score = score;
  }
  return best;
}

VkPipeline Context::pipeline(std::span<const uint32_t> spirv, std::span<const uint32_t> spec) {
  std::lock_guard<std::mutex> lock(pipelines_mutex_);
  auto key = std::make_pair(fnv1a(spirv), std::vector<uint32_t>(spec.begin(), spec.end()));
  auto it = pipelines_.find(key);
  if (it != pipelines_.end()) return it->second;

  VkShaderModuleCreateInfo mci{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  mci.codeSize = spirv.size() * 4;
  mci.pCode = spirv.data();
  VkShaderModule module = VK_NULL_HANDLE;
  ELM_VK(vkCreateShaderModule(device_, &mci, nullptr, &module));
  std::vector<VkSpecializationMapEntry> entries(spec.size());
  for (uint32_t i = 0; i < spec.size(); ++i) entries[i] = {i, i * 4, 4};
  VkSpecializationInfo si{uint32_t(entries.size()), entries.data(), spec.size() * 4, spec.data()};
  VkComputePipelineCreateInfo ci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  ci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
  ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  ci.stage.module = module;
  ci.stage.pName = "main";
  ci.stage.pSpecializationInfo = &si;
  ci.layout = pipeline_layout_;
  VkPipeline p = VK_NULL_HANDLE;
  const VkResult r = vkCreateComputePipelines(device_, pipeline_cache_, 1, &ci, nullptr, &p);
  vkDestroyShaderModule(device_, module, nullptr);
  check(r, "vkCreateComputePipelines");
  pipelines_[key] = p;
  return p;
}

void Context::submit_wait(VkCommandBuffer cb, VkFence fence) {
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cb;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    ELM_VK(vkQueueSubmit(queue_, 1, &si, fence));
  }
  // ELM_VULKAN_SPIN=1 polls the fence instead of sleeping in the driver (a decode step is short).
  static const bool spin = env_flag("ELM_VULKAN_SPIN");
  if (spin) {
    VkResult r;
    while ((r = vkGetFenceStatus(device_, fence)) == VK_NOT_READY) {
    }
    check(r, "vkGetFenceStatus");
  }
  ELM_VK(vkWaitForFences(device_, 1, &fence, VK_TRUE, UINT64_MAX));
  ELM_VK(vkResetFences(device_, 1, &fence));
}

VkCommandBuffer Context::begin_once() {
  VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  ai.commandPool = once_pool_;
  ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  ai.commandBufferCount = 1;
  VkCommandBuffer cb = VK_NULL_HANDLE;
  ELM_VK(vkAllocateCommandBuffers(device_, &ai, &cb));
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  ELM_VK(vkBeginCommandBuffer(cb, &bi));
  // Whatever ran before (other submissions) is complete and visible.
  barrier(cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
          VK_ACCESS_MEMORY_WRITE_BIT, VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT);
  return cb;
}

void Context::end_once(VkCommandBuffer cb) {
  barrier(cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT | VK_PIPELINE_STAGE_HOST_BIT,
          VK_ACCESS_MEMORY_WRITE_BIT, VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT | VK_ACCESS_HOST_READ_BIT);
  ELM_VK(vkEndCommandBuffer(cb));
  try {
    submit_wait(cb, once_fence_);
  } catch (...) {
    vkFreeCommandBuffers(device_, once_pool_, 1, &cb);
    throw;
  }
  vkFreeCommandBuffers(device_, once_pool_, 1, &cb);
}

void barrier(VkCommandBuffer cb, VkPipelineStageFlags src, VkPipelineStageFlags dst, VkAccessFlags src_access,
             VkAccessFlags dst_access) {
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = src_access;
  mb.dstAccessMask = dst_access;
  vkCmdPipelineBarrier(cb, src, dst, 0, 1, &mb, 0, nullptr, 0, nullptr);
}

}  // namespace elm::vk
