// What a Vulkan segment computes, as lists of kernel launches. Device-independent: it decides kernels,
// fusions, bindings and push constants; vk_segment.cpp allocates memory and records command buffers.
//
// Two lists cover every step:
//   small (steps of at most kSmallStep tokens, i.e. decoding): matrix-vector kernels, with matmuls that
//     share an input fused into one launch (q/k/v; gate/up with the activation and the product as a
//     GLU), an RMSNorm feeding only those matmuls computed inside them, and a residual Add folded in;
//   large (prefill): one launch per node, tiled matmuls.
// Values that a fusion skips are still allocated, so both lists share one buffer assignment.
#pragma once
#include <array>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/vulkan/vk_context.h"

namespace elm::vk {

constexpr int64_t kSmallStep = 8;
constexpr int64_t kMaxHeadDim = 512;  // attention.comp: MAX_D

// Launch parameters that are per-device or tunable (vulkan_backend.h: ELM_VULKAN_MATVEC).
// Decode matrix-vector products run gemv.comp: row groups of `tpr` invocations (at least 32, doubled
// while each invocation would still get `blocks` 16-byte chunks of a row), NR = `rows` output rows per
// row group, each invocation holding min(blocks, chunks left) chunks of every row in registers per pass.
// The legacy kernel (matvec.comp: 4-byte units, x from global memory unless matvec_shared_x) runs
// where gemv cannot (rows not a multiple of 16 bytes, x too large for shared memory) or when asked for
// (matvec_legacy); there `blocks` counts 32-value blocks per invocation, as before.
struct Tuning {
  uint32_t matvec_rows = 2;    // output rows per row group
  uint32_t matvec_blocks = 8;  // gemv: 16-byte chunks of a row per invocation and pass
  uint32_t matvec_tpr = 0;     // fixed invocations per row group; 0: from K as above
  uint32_t matvec_wg = 128;    // smallest workgroup (several row groups when they are small)
  // Decode attention: cache slots per workgroup (shaders/attention.comp: runs of attn_split slots, as
  // many as the step's positions reach, combined by the last to finish); 0: one workgroup scans a
  // head's whole cache. 256: on the H100 a 1,600-token context decodes 58 % faster than unsplit.
  uint32_t attn_split = 256;
  bool matvec_shared_x = false;  // legacy kernel, quantized weights: x in shared memory (matvec.comp XS4)
  bool matvec_legacy = false;    // matvec.comp for every matrix-vector product (comparisons)
  // gemv with int8 activations for quantized weights (gemv_i8: x quantized per 32-value block as the
  // CPU's kernels do, 4x8-bit integer dot products); only where the device has integer dot products.
  bool matvec_int8 = false;
  uint32_t max_shared = 32768;  // bytes of shared memory a workgroup may use
  uint64_t max_range = uint64_t(1) << 27;       // largest storage-buffer binding
  uint32_t max_groups_x = 65535;
};

// What a descriptor binding points at.
struct Ref {
  enum Kind : uint8_t { None, Value, Weight, Step, KCache, VCache, PosCache, Ids, AttnScratch, AttnCount };
  Kind kind = None;
  int32_t id = -1;  // Value: node id; Weight: index into Program::weights; caches: state id
                    // (Ids: the argmax of every output row, greedy steps; vk_segment.h. AttnScratch,
                    // AttnCount: split attention's runs and counters, Program::attn_scratch_floats)
  bool operator<(const Ref& o) const { return kind != o.kind ? kind < o.kind : id < o.id; }
  bool operator==(const Ref& o) const { return kind == o.kind && id == o.id; }
};

// A weight as the device holds it: one tensor as stored, the rows of several tensors concatenated
// (fused matmuls), or float32 values (vectors: norm weights, biases, frequency tables).
struct DeviceWeight {
  std::vector<std::string> names;
  bool f32 = false;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  int group = 0;
  bool scale_f32 = false;
  uint32_t soff_words = 0, moff_words = 0;  // scales / mins planes, in 32-bit words from the start
  size_t bytes = 0;
  std::string key() const;
};
// Describes (and checks) a device weight; throws elm::Error when the tensors cannot be concatenated.
DeviceWeight describe_weight(const WeightStore& w, std::vector<std::string> names, bool f32);
// The bytes to upload: the tensor itself when stored as is (no copy), else `scratch` filled.
std::span<const uint8_t> weight_bytes(const WeightStore& w, const DeviceWeight& d, std::vector<uint8_t>& scratch);

struct StepDims {
  uint32_t T = 0, n_out = 0, max_batch = 0;
  // Split decode attention (Tuning::attn_split): the step's largest position + 1 rounded up to a whole
  // run of slots; launches cover only the runs it reaches (0: every run).
  uint32_t ctx = 0;
};

struct Launch {
  std::array<uint32_t, kPushBytes / 4> push{};
  std::array<uint32_t, 3> groups{1, 1, 1};
};

struct Kernel {
  std::string shader;           // embedded shader name, without the "_sg" suffix
  bool reduces = false;         // has a subgroup variant "<shader>_sg"
  std::vector<uint32_t> spec;   // specialization constants; spec[0] is the workgroup size
  std::array<Ref, kBindingCount> bind{};
  std::vector<Ref> reads, writes;  // values and caches (barriers and buffer lifetimes)
  int32_t pos = 0;                 // index of the node it runs at, in the segment's order
  std::function<void(const StepDims&, Launch&)> launch;
  std::string label;               // the node(s) it computes, for errors and profiles
};

// A kv state's cache geometry and entries, the same as the CPU's (src/backend/cpu/kv_cache.h): F32, or
// F16 (RuntimeConfig::kv_dtype; IEEE half, two a 32-bit word). The CPU's I8 entries are not run here.
struct KvGeometry {
  int64_t cap = 0;
  bool ring = false;
  int64_t kv_heads = 0, head_dim = 0, v_head_dim = 0;
  bool half = false;
  size_t entry_bytes() const { return half ? 2 : 4; }
};
KvGeometry kv_geometry(const Graph& g, int64_t state, const RuntimeConfig& c);

struct Program {
  std::vector<Kernel> small, large;
  std::vector<DeviceWeight> weights;
  std::set<int64_t> states;
  std::vector<int32_t> embeds;  // embed nodes: token ids are checked against their tables
  int fused_matmuls = 0;        // matmuls that share a launch with another (small list)
  // Split decode attention (Tuning::attn_split): floats of the runs' partial results and counters,
  // for the widest attention node at kSmallStep tokens; 0 when no attention is split.
  uint64_t attn_scratch_floats = 0, attn_counters = 0;
};

Program build_program(const SegmentSpec& spec, const Tuning& tuning);

// Invocations per row group of a legacy matvec over rows of K values.
uint32_t matvec_tpr(const Tuning& t, int64_t K);
// gemv.comp's shape for rows of K values of type t: invocations per row group and chunks per
// invocation and pass; {0, 0} when gemv cannot take them (K not a whole number of 16-byte chunks).
std::pair<uint32_t, uint32_t> gemv_shape(const Tuning& t, DType type, int64_t K);

// Whether the backend can run the node: "" when it can, else why not.
std::string unsupported_reason(const Graph& g, const WeightStore& w, int32_t node, const RuntimeConfig& c,
                               const Tuning& t);

}  // namespace elm::vk
