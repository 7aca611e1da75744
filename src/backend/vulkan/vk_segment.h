// A segment of the graph running on a Vulkan device: its program (vk_program.h) with device memory for
// every value, descriptor sets and pipelines made once at prepare, and command buffers recorded once
// per step shape (tokens, output rows) and replayed: a decode step re-records nothing.
#pragma once
#include <deque>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "backend/vulkan/vk_artifact.h"
#include "backend/vulkan/vk_memory.h"
#include "backend/vulkan/vk_program.h"

namespace elm::vk {

// One attention state's cache in device memory (layouts in shaders/attention.comp).
struct KvState {
  KvGeometry geo;
  Slice k, v, pos;
  size_t bytes = 0;
};

// What the segments of one backend share: the device, uploaded weights (by DeviceWeight::key) and
// the kv states (a state's readers may sit in another segment of the same backend).
struct Shared {
  std::shared_ptr<Context> ctx;
  Tuning tuning;
  bool subgroups = false;
  std::unique_ptr<Pool> weight_pool, state_pool;
  std::map<std::string, Slice> weights;
  std::map<int64_t, std::shared_ptr<KvState>> states;
};

class VulkanSegment : public Segment {
 public:
  VulkanSegment(std::shared_ptr<Shared> shared, const SegmentSpec& spec, const ShaderSet* artifact);
  ~VulkanSegment() override;

  void run(const Batch& batch, BoundaryValues& io) override;
  // Greedy steps: an argmax kernel reduces each row of `logits` on the device, and the step reads back
  // one id a row instead of the rows (49k floats each for SmolLM2) and leaves the scan to the GPU.
  bool run_argmax(const Batch& batch, BoundaryValues& io, int32_t logits, std::vector<int32_t>& ids) override;
  void seq_reset(int seq) override { seq_truncate(seq, 0); }
  void seq_truncate(int seq, int32_t n_past) override;
  size_t state_bytes() const override;

 private:
  struct Compiled {  // a kernel bound to this segment's memory
    VkPipeline pipeline = VK_NULL_HANDLE;
    VkDescriptorSet set = VK_NULL_HANDLE;
    std::vector<int> reads, writes;  // hazard resources (value slots, caches)
  };
  void assign_slots();
  void upload_weights();
  void make_states();
  std::vector<Compiled> compile(const std::vector<Kernel>& list, const ShaderSet* artifact);
  // A step's command buffer, by shape (StepDims) and argmax output (-1: none; else run_argmax's logits).
  VkCommandBuffer command_buffer(const StepDims& d, int32_t argmax);
  void record(VkCommandBuffer cb, const StepDims& d, int32_t argmax);
  StepDims run_step(const Batch& batch, BoundaryValues& io, int32_t argmax);  // returns the step's dims
  Slice slice_of(const Ref& r) const;
  int resource(const Ref& r) const;
  uint32_t rows(int32_t node, const StepDims& d) const;

  std::shared_ptr<Shared> sh_;
  Context& ctx_;
  SegmentSpec spec_;
  Program prog_;
  std::vector<Compiled> small_, large_;
  std::unique_ptr<Pool> device_pool_, upload_pool_, readback_pool_;
  std::vector<Slice> slots_;
  std::map<int32_t, int> slot_of_;  // value node -> slot
  Slice step_host_, step_dev_, dummy_;
  std::map<int32_t, Slice> staging_, readback_;  // boundary inputs / outputs
  std::vector<std::shared_ptr<KvState>> states_;
  std::vector<int64_t> owned_states_;  // created by this segment (counted in state_bytes)
  VkPipeline truncate_pipeline_ = VK_NULL_HANDLE;
  std::map<int64_t, VkDescriptorSet> truncate_sets_;
  VkPipeline argmax_pipeline_ = VK_NULL_HANDLE;
  std::map<int32_t, VkDescriptorSet> argmax_sets_;  // by output value
  Slice ids_dev_, ids_host_;                        // max_batch int32 argmax results
  Slice attn_scratch_, attn_count_;                 // split decode attention (Program::attn_scratch_floats)
  VkDescriptorPool desc_pool_ = VK_NULL_HANDLE;
  VkCommandPool cmd_pool_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  using CmdKey = std::tuple<uint32_t, uint32_t, uint32_t, int32_t>;  // T, output rows, ctx, argmax output
  std::map<CmdKey, VkCommandBuffer> cmds_;
  std::deque<CmdKey> cmd_order_;  // oldest first
  std::vector<int32_t> out_rows_;

  // ELM_VULKAN_PROFILE=1: GPU time of every launch from timestamps, summed per kernel and printed to
  // stderr when the segment is destroyed (decode and prefill lists separately).
  struct Profile {
    VkQueryPool pool = VK_NULL_HANDLE;
    uint32_t queries = 0;
    struct Entry {
      double ns = 0;
      int64_t launches = 0;
    };
    std::map<std::string, Entry> small, large;  // by kernel label (layer prefixes removed)
    int64_t small_steps = 0, large_steps = 0;
    double small_wall_ns = 0, large_wall_ns = 0;  // submit to fence, on the host
    double small_gpu_ns = 0, large_gpu_ns = 0;    // first to last timestamp
  };
  std::unique_ptr<Profile> prof_;
  void profile_step(const StepDims& d, double wall_ns);
  void print_profile() const;
};

}  // namespace elm::vk
