// The partitioner: assigns every compute node to the first backend (in the caller's preference order)
// that supports it, CPU last as the fallback for everything, then cuts the node list into segments of
// consecutive nodes on one backend and works out which values cross between them.
#pragma once
#include <string>
#include <vector>

#include "backend/backend.h"

namespace elm {

struct PartitionPlan {
  struct Segment {
    int backend = 0;  // index into the backend list
    std::vector<int32_t> nodes, inputs, outputs;
  };
  std::vector<int> node_backend;  // per node; -1 for sources (weights, token ids, positions)
  std::vector<Segment> segments;

  std::string summary(const Graph& g, const std::vector<std::string>& backend_names) const;
};

bool is_source_op(Op op);

// Nodes that share a state (an attention writing a KV cache and those reading it) land on one
// backend: if any of them cannot run on the chosen backend, the whole group goes to the fallback.
PartitionPlan partition(const Graph& g, const WeightStore& w, const std::vector<Backend*>& backends);

// Rebuilds segments from a stored per-node assignment (an `elm compile` plan), checking it is valid
// for this graph and these backends.
PartitionPlan plan_from_assignment(const Graph& g, std::vector<int> node_backend, size_t n_backends);

}  // namespace elm
