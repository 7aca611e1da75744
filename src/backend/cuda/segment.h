// A run of graph nodes executed on the GPU: lowered to kernel steps (lowering.h), with one float32
// device buffer per materialized value (reused once the value is dead). A step's batch data (token ids,
// positions, sequences, requested rows) goes up in one copy; small steps (decoding) are captured once as
// a CUDA graph per shape and replayed, so a token costs one graph launch instead of a hundred launches.
#pragma once
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/context.h"
#include "backend/cuda/lowering.h"

namespace elm::cuda {

struct SegmentOptions {
  bool fuse = true;     // ELM_CUDA_FUSE=0 turns the fusions off
  bool graphs = true;   // ELM_CUDA_GRAPHS=0 runs every step eagerly
  bool timing = false;  // ELM_CUDA_TIMING=1 prints the device time of the steps (per token count) at exit
};
SegmentOptions segment_options_from_env();

class CudaSegment : public Segment {
 public:
  CudaSegment(const SegmentSpec& spec, std::shared_ptr<Context> ctx, const SegmentOptions& options);
  ~CudaSegment() override;
  void run(const Batch& batch, BoundaryValues& io) override;
  bool run_argmax(const Batch& batch, BoundaryValues& io, int32_t logits, std::vector<int32_t>& ids) override;
  void seq_reset(int seq) override;
  void seq_truncate(int seq, int32_t n_past) override;
  size_t state_bytes() const override;

  const std::vector<Step>& steps() const { return steps_; }

 private:
  // Device data of a step, resolved at prepare.
  struct Prepared {
    MatmulArgs mm;                 // Matmul (T filled in per run)
    DeviceWeight table;            // Embed
    int64_t table_rows = 0;
    const float* vec = nullptr;    // the node's small weight (norm scale, broadcast operand, frequencies)
    RopeArgs rope_q, rope_k;       // Attention (fused) or Rope
    KvState* kv = nullptr;         // Attention
  };
  struct Transfer {
    int32_t node;
    float* dev;
    float* host;  // pinned staging
  };
  using GraphKey = std::tuple<int64_t, int64_t, bool, int32_t>;  // T, outputs, single sequence, argmax node
  struct GraphSlot {
    int seen = 0;
    GraphExec exec;
    bool ready = false;
  };

  void prepare_step(size_t i);
  void allocate_values();
  void run_step(const Batch& batch, BoundaryValues& io, int32_t argmax_node);
  void enqueue(cudaStream_t s);
  void exec(size_t i, cudaStream_t s);
  int64_t rows_of(int32_t node) const;
  float* value(int32_t node) const;
  RopeArgs rope_args(int32_t rope_node);

  const Graph& g_;
  const WeightStore& w_;
  SegmentSpec spec_;
  std::shared_ptr<Context> ctx_;
  SegmentOptions options_;
  std::vector<Step> steps_;
  std::vector<Prepared> prep_;
  std::vector<float*> value_;  // per node: its device buffer, null when not materialized here
  std::vector<DeviceBuffer> buffers_;
  std::vector<Transfer> inputs_, outputs_;
  PinnedBuffer host_io_;  // staging for inputs and outputs
  DeviceBuffer params_;   // tokens, positions, seqs, output rows of the step
  PinnedBuffer host_params_;
  DeviceBuffer scratch_, attn_work_, attn_counters_;
  DeviceBuffer ids_;       // device argmax results
  DeviceBuffer argmax_scratch_;
  std::vector<int32_t> seq_end_;  // per sequence: one past the last position written (truncation skips)
  PinnedBuffer host_ids_;
  std::map<int64_t, KvState*> states_;
  size_t owned_state_bytes_ = 0;
  std::map<GraphKey, GraphSlot> graphs_;
  struct Timing {
    int steps = 0;
    double device_ms = 0, host_ms = 0;
  };
  std::map<int64_t, Timing> timing_;  // by tokens in the step
  cudaEvent_t ev_begin_ = nullptr, ev_end_ = nullptr;

  // Per run.
  int64_t T_ = 0, n_out_ = 0;
  bool single_seq_ = false;
  int32_t argmax_node_ = -1;  // this run returns the argmax of this value's rows instead of the value
  const int32_t *d_tokens_ = nullptr, *d_positions_ = nullptr, *d_seqs_ = nullptr, *d_out_rows_ = nullptr;
};

}  // namespace elm::cuda
