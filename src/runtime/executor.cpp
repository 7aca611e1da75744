#include "runtime/executor.h"

#include "core/error.h"

namespace elm {

Executor::Executor(std::shared_ptr<const Model> model, const RuntimeConfig& config, std::vector<std::string> names)
    : model_(std::move(model)), config_(config) {
  if (names.empty() || names.back() != "cpu") names.push_back("cpu");
  for (const auto& n : names) backends_.push_back(make_backend(n, config_));
  init();
}

Executor::Executor(std::shared_ptr<const Model> model, const RuntimeConfig& config,
                   std::vector<std::unique_ptr<Backend>> backends)
    : model_(std::move(model)), config_(config), backends_(std::move(backends)) {
  ELM_CHECK(!backends_.empty(), "executor needs at least one backend");
  init();
}

std::vector<std::string> Executor::backend_names() const {
  std::vector<std::string> n;
  for (const auto& b : backends_) n.push_back(b->name());
  return n;
}

void Executor::init() {
  ELM_CHECK(config_.max_batch > 0 && config_.max_seqs > 0 && config_.n_ctx > 0, "invalid runtime configuration");
  const Graph& g = model_->graph;
  // A plan stored by `elm compile` for exactly these backends is used as is, with its artifacts.
  const CompiledPlan* stored = nullptr;
  const std::vector<std::string> names = backend_names();
  for (const CompiledPlan& c : model_->compiled)
    if (c.backends == names) stored = &c;
  if (stored) {
    plan_ = plan_from_assignment(g, stored->node_backend, backends_.size());
    used_compiled_ = true;
  } else {
    std::vector<Backend*> raw;
    for (auto& b : backends_) raw.push_back(b.get());
    plan_ = partition(g, model_->weights, raw);
  }
  for (size_t s = 0; s < plan_.segments.size(); ++s) {
    const auto& seg = plan_.segments[s];
    SegmentSpec spec;
    spec.graph = &g;
    spec.weights = &model_->weights;
    spec.nodes = seg.nodes;
    spec.inputs = seg.inputs;
    spec.outputs = seg.outputs;
    spec.config = config_;
    Backend& b = *backends_[size_t(seg.backend)];
    if (stored && s < stored->artifacts.size() && b.accepts_artifact(stored->artifacts[s]))
      spec.artifact = stored->artifacts[s];
    segments_.push_back(b.prepare(spec));
  }
}

const HostTensor& Executor::step(const Batch& batch) {
  ELM_CHECK(batch.size() > 0, "empty batch");
  ELM_CHECK(batch.size() <= config_.max_batch, "batch of ", batch.size(), " tokens exceeds max_batch ",
            config_.max_batch);
  for (int64_t t = 0; t < batch.size(); ++t) {
    ELM_CHECK(batch.positions[size_t(t)] >= 0 && batch.positions[size_t(t)] < config_.n_ctx, "position ",
              batch.positions[size_t(t)], " is outside the context of ", config_.n_ctx, " tokens");
    ELM_CHECK(batch.seqs[size_t(t)] >= 0 && batch.seqs[size_t(t)] < config_.max_seqs, "sequence ",
              batch.seqs[size_t(t)], " is out of range");
    ELM_CHECK(batch.tokens[size_t(t)] >= 0 && batch.tokens[size_t(t)] < model_->info.vocab_size, "token id ",
              batch.tokens[size_t(t)], " is outside the vocabulary (", model_->info.vocab_size, ")");
  }
  for (auto& s : segments_) s->run(batch, io_);
  return io_.at(model_->graph.output);
}

void Executor::seq_reset(int seq) {
  for (auto& s : segments_) s->seq_reset(seq);
}

void Executor::seq_truncate(int seq, int32_t n_past) {
  // All or nothing: a segment whose recurrent state cannot go back must not leave the others cut.
  for (const auto& s : segments_)
    ELM_CHECK(s->seq_can_truncate(seq, n_past), "cannot roll sequence ", seq, " back to ", n_past,
              " tokens: recurrent layers keep their state after each of the last ", config_.recurrent_snapshots,
              " tokens of a step only (RuntimeConfig::recurrent_snapshots); truncate to the current length, to 0, or "
              "reset the sequence");
  for (auto& s : segments_) s->seq_truncate(seq, n_past);
}

std::string Executor::plan_summary() const { return plan_.summary(model_->graph, backend_names()); }

size_t Executor::state_bytes() const {
  size_t n = 0;
  for (const auto& s : segments_) n += s->state_bytes();
  return n;
}

}  // namespace elm
