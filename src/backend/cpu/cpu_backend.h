// The CPU backend: runs every op of ops.def, so it is the partitioner's fallback.
#pragma once
#include <memory>

#include "backend/backend.h"

namespace elm {

std::unique_ptr<Backend> make_cpu_backend(const RuntimeConfig& config);

}  // namespace elm
