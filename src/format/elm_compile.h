// elm compile: partitions a .elm model's graph for a list of backends, lets every backend compile its
// segments (repacked weights, shader binaries), and stores the plan and the artifacts in the file as
// compiled sections. The runtime uses them when it runs on the same backend list (Executor).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace elm {

struct CompileResult {
  std::vector<std::string> backends;   // the plan's backend list, fallback last
  size_t segments = 0;
  std::vector<size_t> artifact_bytes;  // per segment (0: the backend stored nothing)
  std::string summary;                 // PartitionPlan::summary
};

// Writes `output` (which may be `input`: the file is replaced once the new one is complete) with every
// section of `input` plus a compiled plan for `backends`, replacing an earlier plan for the same list.
// The last backend must support every op (CPU).
CompileResult compile_elm(const std::string& input, const std::string& output,
                          std::vector<std::unique_ptr<Backend>> backends, const RuntimeConfig& config = {});
// By backend names; "cpu" is appended as the fallback when missing.
CompileResult compile_elm(const std::string& input, const std::string& output, std::vector<std::string> backends,
                          const RuntimeConfig& config = {});

}  // namespace elm
