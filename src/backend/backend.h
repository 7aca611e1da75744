// The backend interface. CPU, Vulkan and CUDA implement it; the partitioner (partition.h) assigns each
// graph node to a backend and cuts the graph into segments, runs of consecutive nodes on one backend.
// A backend turns a segment into an executable Segment (prepare), optionally from an artifact that
// `elm compile` stored in the model file (compile produces it). Values that cross segments travel as
// host float32 matrices.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/batch.h"
#include "core/dtype.h"
#include "core/weight_store.h"
#include "graph/graph.h"

namespace elm {

struct RuntimeConfig {
  int max_seqs = 1;      // sequence slots kept in the caches
  int n_ctx = 2048;      // positions per sequence
  int max_batch = 512;   // most tokens in one step
  int threads = 0;       // CPU threads; 0 = one per core
  DType kv_dtype = DType::F32;   // F32, F16 or I8 cache entries
  DType act_dtype = DType::F32;  // activations between ops: F32, BF16 or F16
  // Recurrent layers (conv, delta rule) keep their state after each of the last this-many tokens of
  // every step, so a sequence can be truncated back that far (speculative decoding: draft length + 1).
  // 0: truncation of a recurrent model only to its current length or to 0.
  int recurrent_snapshots = 0;
  // CPU: quantized weights multiply the float activations as they are (the reference kernels) rather
  // than activations rounded to int8 blocks (the fast path, as llama.cpp does). For tests that compare
  // another backend with the CPU, and for debugging.
  bool exact_matmul = false;
  // CPU: quantized matmul weights that the file holds no packed copy of (`elm compile --backends cpu`)
  // are packed at load (qgemm.h's layout, what the fast decode and prefill kernels read) and the
  // mapped originals paged out. Off: the kernels read the portable layout in place (slower, no copy).
  bool cpu_repack = true;
  // CPU: a gated feed-forward block (act(x Wg) * (x Wu)) with packed weights runs as one job, a few
  // output columns at a time (bit-identical to the separate ops). Off (or ELM_CPU_FUSE=0): op by op.
  bool cpu_fuse = true;
};

// A float32 matrix in host memory: a value crossing a segment boundary, or the logits.
struct HostTensor {
  int64_t rows = 0, cols = 0;
  std::vector<float> data;
  void resize(int64_t r, int64_t c) {
    rows = r, cols = c;
    data.resize(size_t(r * c));
  }
  const float* row(int64_t r) const { return data.data() + r * cols; }
};

// Boundary values of one step, by node id.
using BoundaryValues = std::map<int32_t, HostTensor>;

struct SegmentSpec {
  const Graph* graph = nullptr;
  const WeightStore* weights = nullptr;
  std::vector<int32_t> nodes;    // compute nodes of the segment, in order
  std::vector<int32_t> inputs;   // nodes of earlier segments it reads
  std::vector<int32_t> outputs;  // its nodes read by later segments or the caller (graph output)
  RuntimeConfig config;
  std::span<const uint8_t> artifact;  // what compile() stored for this segment, empty if none
};

class Segment {
 public:
  virtual ~Segment() = default;
  // Runs the step: reads io[inputs], writes io[outputs] (rows: T, or Out for kRowsOut values).
  virtual void run(const Batch& batch, BoundaryValues& io) = 0;
  // Per-sequence state (KV caches, recurrent state) owned by this segment.
  // Greedy decoding without copying logits: runs the step like run(), but for `logits` (the graph
  // output, which this segment produces) writes only the argmax of every row (lowest id on ties) to
  // `ids`. Returns false, having done nothing, when the backend cannot; the caller then uses run().
  virtual bool run_argmax(const Batch& batch, BoundaryValues& io, int32_t logits, std::vector<int32_t>& ids) {
    return false;
  }
  virtual void seq_reset(int seq) = 0;                   // forget the sequence
  // Drops positions >= n_past. Recurrent state cannot always go back (see
  // RuntimeConfig::recurrent_snapshots): callers check seq_can_truncate on every segment first;
  // seq_truncate throws elm::Error, changing nothing, when it cannot.
  virtual void seq_truncate(int seq, int32_t n_past) = 0;
  virtual bool seq_can_truncate(int seq, int32_t n_past) const { return true; }
  virtual size_t state_bytes() const { return 0; }       // memory held for states
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Whether this backend can execute the node (op, attributes, input dtypes).
  virtual bool supports(const Graph& g, const WeightStore& w, int32_t node) const = 0;
  virtual std::unique_ptr<Segment> prepare(const SegmentSpec& spec) = 0;
  // `elm compile`: the artifact to store for this segment (repacked weights, shader binaries). Empty
  // means there is nothing worth storing; prepare() must work without an artifact too.
  virtual std::vector<uint8_t> compile(const SegmentSpec& spec) { return {}; }
  // Whether a stored artifact is still usable by this build (format version, device arch).
  virtual bool accepts_artifact(std::span<const uint8_t> artifact) const { return !artifact.empty(); }
};

// Backends register a factory under a name ("cpu", "cuda", "vulkan"); tests register partial ones.
using BackendFactory = std::function<std::unique_ptr<Backend>(const RuntimeConfig&)>;
void register_backend(const std::string& name, BackendFactory factory);
// Throws elm::Error listing the available backends when `name` is unknown or cannot start here.
std::unique_ptr<Backend> make_backend(const std::string& name, const RuntimeConfig& config);
std::vector<std::string> backend_names();

// Defined in builtin.cpp: registers the backends compiled into this build (CPU always).
void register_builtin_backends(std::map<std::string, BackendFactory>& registry);

}  // namespace elm
