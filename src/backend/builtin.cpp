// The backends compiled into this build. GPU backends are added under their CMake options.
#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"

namespace elm {

void register_builtin_backends(std::map<std::string, BackendFactory>& r) {
  r["cpu"] = [](const RuntimeConfig& c) { return make_cpu_backend(c); };
}

}  // namespace elm
