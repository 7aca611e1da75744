// The backends compiled into this build. GPU backends are added under their CMake options.
#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#ifdef ELM_WITH_VULKAN
#include "backend/vulkan/vulkan_backend.h"
#endif
#ifdef ELM_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace elm {

void register_builtin_backends(std::map<std::string, BackendFactory>& r) {
  r["cpu"] = [](const RuntimeConfig& c) { return make_cpu_backend(c); };
#ifdef ELM_WITH_VULKAN
  r["vulkan"] = [](const RuntimeConfig& c) { return make_vulkan_backend(c); };
#endif
#ifdef ELM_HAVE_CUDA
  r["cuda"] = [](const RuntimeConfig& c) { return make_cuda_backend(c); };
#endif
}

}  // namespace elm
