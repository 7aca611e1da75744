// Executor: runs a model's graph on a list of backends. It partitions the graph (or uses the plan an
// `elm compile` stored), prepares one Segment per run of nodes, and passes boundary values between
// them each step.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/partition.h"
#include "runtime/model.h"

namespace elm {

class Executor {
 public:
  // backends: preference order, e.g. {"cuda"}; "cpu" is appended as the fallback when missing.
  Executor(std::shared_ptr<const Model> model, const RuntimeConfig& config, std::vector<std::string> backends = {"cpu"});
  // Test hook: run on backend objects the caller made (the last one must support every op).
  Executor(std::shared_ptr<const Model> model, const RuntimeConfig& config, std::vector<std::unique_ptr<Backend>> backends);

  // One forward step; returns logits [batch.n_outputs(), vocab].
  const HostTensor& step(const Batch& batch);
  // One forward step for greedy decoding: the argmax of every requested row's logits (lowest id on
  // ties), taken on the device when the backend can (then only the ids are copied back).
  std::vector<int32_t> step_argmax(const Batch& batch);

  void seq_reset(int seq);
  void seq_truncate(int seq, int32_t n_past);

  const RuntimeConfig& config() const { return config_; }
  const Model& model() const { return *model_; }
  const PartitionPlan& plan() const { return plan_; }
  std::vector<std::string> backend_names() const;
  std::string plan_summary() const;
  bool used_compiled_plan() const { return used_compiled_; }
  size_t state_bytes() const;

 private:
  void init();
  void check(const Batch& batch) const;
  std::shared_ptr<const Model> model_;
  RuntimeConfig config_;
  std::vector<std::unique_ptr<Backend>> backends_;
  PartitionPlan plan_;
  std::vector<std::unique_ptr<Segment>> segments_;
  BoundaryValues io_;
  bool used_compiled_ = false;
};

}  // namespace elm
