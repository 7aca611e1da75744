#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "backend/cpu/cpu_artifact.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/kv_cache.h"
#include "backend/cpu/recurrent_state.h"
#include "core/error.h"
#include "core/huge_arena.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "core/zeroed_array.h"

namespace elm {

namespace {

using cpu::KvCache;
using cpu::RecurrentState;

bool is_recurrent(Op op) { return op == Op::CausalConv1d || op == Op::GatedDeltaRule; }

// The KV caches of one graph on this backend, by state id. Shared by its segments: with KV sharing
// the layer that writes a cache and the layers that read it may land in different segments.
using KvCaches = std::map<int64_t, std::unique_ptr<KvCache>>;
// Weights packed at load (RuntimeConfig::cpu_repack), by tensor name; shared by the segments. The
// copies lie back to back on huge pages (core/huge_arena.h).
struct PackedAtLoad {
  HugeArena memory;
  std::map<std::string, const uint8_t*> tensors;
};

// ELM_CPU_PROFILE=1: wall time per op kind (products by shape), decode steps (one token) apart from
// larger ones, printed to stderr when the segment is destroyed. For finding where a step goes.
class OpProfile {
 public:
  static std::unique_ptr<OpProfile> from_env() {
    const char* e = std::getenv("ELM_CPU_PROFILE");
    return e && *e && std::strcmp(e, "0") != 0 ? std::make_unique<OpProfile>() : nullptr;
  }
  void add(const std::string& key, bool decode, double seconds) {
    Entry& e = entries_[{decode ? "decode" : "prefill", key}];
    e.seconds += seconds;
    ++e.calls;
  }
  void step(bool decode) { ++steps_[decode]; }
  ~OpProfile() {
    for (const char* kind : {"decode", "prefill"}) {
      const int64_t steps = steps_[std::strcmp(kind, "decode") == 0];
      if (!steps) continue;
      std::vector<std::pair<double, std::string>> rows;
      double total = 0;
      for (const auto& [k, e] : entries_)
        if (k.first == kind) rows.emplace_back(e.seconds, k.second + " x" + std::to_string(e.calls / steps)), total += e.seconds;
      std::sort(rows.rbegin(), rows.rend());
      std::fprintf(stderr, "cpu profile, %s: %lld steps, %.3f ms a step\n", kind, static_cast<long long>(steps),
                   1e3 * total / double(steps));
      for (const auto& [sec, name] : rows)
        std::fprintf(stderr, "  %8.3f ms %5.1f%%  %s\n", 1e3 * sec / double(steps), 100 * sec / total, name.c_str());
    }
  }

 private:
  struct Entry {
    double seconds = 0;
    int64_t calls = 0;
  };
  std::map<std::pair<std::string, std::string>, Entry> entries_;
  int64_t steps_[2] = {0, 0};
};

// One float32 buffer per value, reused once the value is dead (liveness computed at prepare).
class CpuSegment : public Segment {
 public:
  CpuSegment(const SegmentSpec& spec, std::shared_ptr<ThreadPool> pool, std::shared_ptr<KvCaches> kv,
             std::shared_ptr<PackedAtLoad> packed_at_load)
      : g_(*spec.graph), w_(*spec.weights), spec_(spec), pool_(std::move(pool)), kv_(std::move(kv)),
        packed_at_load_(std::move(packed_at_load)) {
    const DType act = spec.config.act_dtype;
    ELM_CHECK(act == DType::F32 || act == DType::BF16 || act == DType::F16, "activation type must be F32, BF16 or F16, not ",
              dtype_name(act));
    const size_t N = g_.nodes.size();
    const int64_t max_rows = spec.config.max_batch;
    slot_.assign(N, -1);
    in_segment_.assign(N, false);
    for (int32_t n : spec.nodes) in_segment_[size_t(n)] = true;
    boundary_in_.assign(N, false);
    for (int32_t n : spec.inputs) boundary_in_[size_t(n)] = true;

    find_glus(spec);

    // Last reader of every value inside the segment; outputs stay live to the end.
    std::vector<size_t> last_use(N, 0);
    for (size_t idx = 0; idx < spec.nodes.size(); ++idx)
      for (int32_t in : g_.nodes[size_t(spec.nodes[idx])].inputs)
        if (in >= 0) last_use[size_t(in)] = idx;
    for (int32_t o : spec.outputs) last_use[size_t(o)] = spec.nodes.size();

    // Buffers: greedy reuse of dead buffers large enough.
    std::vector<int> free_buffers;
    for (size_t idx = 0; idx < spec.nodes.size(); ++idx) {
      const int32_t n = spec.nodes[idx];
      const Node& node = g_.nodes[size_t(n)];
      const size_t need = size_t(max_rows * node.cols);
      int chosen = -1;
      for (size_t f = 0; f < free_buffers.size(); ++f) {
        if (buffers_[size_t(free_buffers[f])].size() >= need) {
          chosen = free_buffers[f];
          free_buffers.erase(free_buffers.begin() + long(f));
          break;
        }
      }
      if (chosen < 0) {
        buffers_.emplace_back(need);
        chosen = int(buffers_.size() - 1);
      }
      slot_[size_t(n)] = chosen;
      // Free inputs whose last use is this node (never a buffer we are about to write: in-place
      // kernels are not assumed, so free after assigning the output).
      for (int32_t in : node.inputs) {
        if (in >= 0 && in_segment_[size_t(in)] && last_use[size_t(in)] == idx && slot_[size_t(in)] >= 0 &&
            std::find(free_buffers.begin(), free_buffers.end(), slot_[size_t(in)]) == free_buffers.end())
          free_buffers.push_back(slot_[size_t(in)]);
      }
      if (last_use[size_t(n)] == 0 && std::find(spec.outputs.begin(), spec.outputs.end(), n) == spec.outputs.end())
        free_buffers.push_back(chosen);  // value never read (should not happen in a valid graph)
    }

    // Small weights (norm scales, biases, frequency tables, conv kernels) as float32 once.
    for (int32_t n : spec.nodes) {
      for (int32_t in : g_.nodes[size_t(n)].inputs) {
        if (in < 0 || g_.nodes[size_t(in)].op != Op::Weight) continue;
        const Node& wn = g_.nodes[size_t(in)];
        const bool small = wn.rows == 1 || g_.nodes[size_t(n)].op == Op::CausalConv1d;
        if (small && !vectors_.count(in)) vectors_[in] = to_f32(w_.get(wn.name));
      }
    }

    // Recurrent states (conv windows, delta-rule matrices) of this segment's recurrent nodes.
    for (int32_t n : spec.nodes) {
      const Node& node = g_.nodes[size_t(n)];
      if (!is_recurrent(node.op)) continue;
      const int64_t s = node.attrs.i("state");
      const Attrs& sa = g_.states[size_t(s)].attrs;
      const int64_t size = node.op == Op::CausalConv1d
                               ? (sa.i("kernel") - 1) * sa.i("channels")
                               : sa.i("heads") * sa.i("k_head_dim") * sa.i("v_head_dim");
      recurrent_.emplace(s, std::make_unique<RecurrentState>(spec.config.max_seqs, size,
                                                             spec.config.recurrent_snapshots));
    }

    // Matmul weights: the model's tensor, and its packed form when the artifact has one (else packed
    // now, unless the config says otherwise or the kernels in use read no packed layout).
    if (!spec.artifact.empty()) packed_ = cpu::read_artifact(spec.artifact, w_);
    const bool repack = spec.config.cpu_repack && !spec.config.exact_matmul && cpu::qkernels(cpu::active_isa());
    for (int32_t n : spec.nodes) {
      const Node& node = g_.nodes[size_t(n)];
      if (node.op != Op::MatMul) continue;
      const std::string& name = g_.nodes[size_t(node.inputs[1])].name;
      const TensorView& t = w_.get(name);
      cpu::MatmulWeight mw{&t, {}};
      if (auto it = packed_.find(name); it != packed_.end()) mw.packed = it->second;
      else if (repack && is_quantized(t.dtype)) mw.packed = pack_at_load(name, t);
      matmul_weights_[n] = mw;
    }
    // Embedding lookups of a table that a product here has packed (a tied output head) read the
    // packed copy, so the original's pages are not brought back in.
    for (int32_t n : spec.nodes) {
      const Node& node = g_.nodes[size_t(n)];
      if (node.op != Op::Embed) continue;
      for (const auto& [m, mw] : matmul_weights_)
        if (mw.packed.data && g_.nodes[size_t(g_.nodes[size_t(m)].inputs[1])].name == g_.nodes[size_t(node.inputs[0])].name)
          embed_packed_[n] = mw.packed;
    }

    // Products of one input that run back to back (q, k, v; gate, up) run as one job (matmul_group).
    // Computing the later ones early is safe: between the first and the last only weights (sources)
    // and these products lie, which read nothing but the shared input, so no buffer a later one
    // writes holds a value still in use.
    for (size_t idx = 0; idx < spec.nodes.size(); ++idx) {
      const int32_t first = spec.nodes[idx];
      const Node& a = g_.nodes[size_t(first)];
      if (a.op != Op::MatMul || grouped_later_.count(first) || fused_away_.count(first) || glus_.count(first) ||
          !matmul_weights_.at(first).packed.data)
        continue;
      std::vector<int32_t> group{first};
      for (size_t j = idx + 1; j < spec.nodes.size(); ++j) {
        const Node& b = g_.nodes[size_t(spec.nodes[j])];
        if (b.op == Op::Weight) continue;
        if (b.op != Op::MatMul || b.inputs[0] != a.inputs[0] || b.rows != a.rows ||
            !matmul_weights_.at(spec.nodes[j]).packed.data)
          break;
        group.push_back(spec.nodes[j]);
      }
      if (group.size() < 2) continue;
      std::vector<cpu::MatmulJob>& jobs = matmul_groups_[first];
      for (int32_t m : group) {  // buffers and weights stay where they are: the jobs are made once
        const Node& mn = g_.nodes[size_t(m)];
        jobs.push_back({&matmul_weights_.at(m), mn.inputs.size() > 2 ? vec(mn.inputs[2]) : nullptr, out(m)});
        if (m != first) grouped_later_.insert(m);
      }
    }

    // KV caches for the states this segment's attention nodes use (made by the first segment that
    // needs one); the segment that writes a cache accounts for its memory.
    for (int32_t n : spec.nodes) {
      const Node& node = g_.nodes[size_t(n)];
      if (node.op != Op::Attention) continue;
      const int64_t s = node.attrs.i("state");
      std::unique_ptr<KvCache>& cache = (*kv_)[s];
      if (!cache) {
        const Attrs& sa = g_.states[size_t(s)].attrs;
        cache = std::make_unique<KvCache>(spec.config.max_seqs, spec.config.n_ctx, sa.i("window"),
                                          spec.config.max_batch, sa.i("kv_heads"), sa.i("head_dim"),
                                          sa.i("v_head_dim", sa.i("head_dim")), spec.config.kv_dtype);
      }
      caches_[s] = cache.get();
      if (node.attrs.i("write", 1)) written_.push_back(cache.get());
    }
  }

  void run(const Batch& b, BoundaryValues& io) override {
    const int64_t T = b.size(), n_out = b.n_outputs();
    ELM_CHECK(T > 0 && T <= spec_.config.max_batch, "batch of ", T, " tokens (at most ", spec_.config.max_batch, ")");
    for (int64_t t = 0; t < T; ++t)
      ELM_CHECK(b.seqs[size_t(t)] >= 0 && b.seqs[size_t(t)] < spec_.config.max_seqs, "sequence ", b.seqs[size_t(t)],
                " is out of range");
    io_ = &io;
    batch_ = &b;
    T_ = T;
    out_rows_.clear();
    for (int64_t t = 0; t < T; ++t)
      if (b.want_output[size_t(t)]) out_rows_.push_back(t);
    (void)n_out;
    group_by_sequence();
    rope_tables_.clear();
    if (profile_) profile_->step(T == 1);
    for (int32_t n : spec_.nodes) {
      if (fused_away_.count(n)) continue;  // computed with the product that leads its pattern
      const auto glu = glus_.find(n);
      const auto run_node = [&] {
        if (glu == glus_.end()) return exec_rounded(n);
        if (!run_glu(n, glu->second))
          for (int32_t m : {n, glu->second.up, glu->second.act, glu->second.mul}) exec_rounded(m);
      };
      if (profile_) {
        const auto t0 = std::chrono::steady_clock::now();
        run_node();
        profile_->add(profile_key(n), T == 1, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      } else {
        run_node();
      }
    }
    for (int32_t o : spec_.outputs) {
      const Node& node = g_.nodes[size_t(o)];
      HostTensor& h = io[o];
      const int64_t rows = rows_of(node);
      h.resize(rows, node.cols);
      std::memcpy(h.data.data(), value(o), size_t(rows * node.cols) * 4);
    }
  }

  void seq_reset(int seq) override {
    for (auto& [s, c] : caches_) c->reset(seq);
    for (auto& [s, r] : recurrent_) r->reset(seq);
  }
  bool seq_can_truncate(int seq, int32_t n_past) const override {
    for (const auto& [s, r] : recurrent_)
      if (!r->can_truncate(seq, n_past)) return false;
    return true;
  }
  void seq_truncate(int seq, int32_t n_past) override {
    // Every recurrent state checks before any cache changes, so that a refusal changes nothing.
    for (const auto& [s, r] : recurrent_) r->check_truncate(seq, n_past);
    for (auto& [s, c] : caches_) c->truncate(seq, n_past);
    for (auto& [s, r] : recurrent_) r->truncate(seq, n_past);
  }
  size_t state_bytes() const override {
    size_t n = 0;
    for (const KvCache* c : written_) n += c->bytes();
    for (const auto& [s, r] : recurrent_) n += r->bytes();
    return n;
  }

 private:
  // A product is named by its shape (and the group it leads), other ops by their kind.
  std::string profile_key(int32_t id) const {
    const Node& n = g_.nodes[size_t(id)];
    if (n.op != Op::MatMul) return op_name(n.op);
    if (grouped_later_.count(id)) return "MatMul (grouped, counted with the first)";
    if (glus_.count(id)) {
      const int64_t K = g_.nodes[size_t(n.inputs[0])].cols;
      return "MatMul " + std::to_string(K) + "x" + std::to_string(n.cols) + " (gate and up, with " +
             op_name(g_.nodes[size_t(glus_.at(id).act)].op) + " and mul)";
    }
    const int64_t K = g_.nodes[size_t(n.inputs[0])].cols;
    return "MatMul " + std::to_string(K) + "x" + std::to_string(n.cols) +
           (matmul_groups_.count(id) ? " (group of " + std::to_string(matmul_groups_.at(id).size()) + ")" : "");
  }

  int64_t rows_of(const Node& n) const { return n.rows == kRowsT ? T_ : n.rows == kRowsOut ? int64_t(out_rows_.size()) : n.rows; }

  // Read access to any value: boundary input, own buffer.
  const float* value(int32_t id) const {
    if (boundary_in_[size_t(id)]) return io_->at(id).data.data();
    return buffers_[size_t(slot_[size_t(id)])].data();
  }
  float* out(int32_t id) { return buffers_[size_t(slot_[size_t(id)])].data(); }
  const float* vec(int32_t id) const { return id < 0 ? nullptr : vectors_.at(id).data(); }
  const TensorView& tensor(int32_t id) const { return w_.get(g_.nodes[size_t(id)].name); }

  // The step's rows per sequence, in order, and a check that each sequence continues exactly where
  // its recurrent states stopped (done before any state changes, so a bad batch leaves them intact).
  void group_by_sequence() {
    seq_rows_.clear();
    if (recurrent_.empty()) return;
    for (int64_t t = 0; t < T_; ++t) seq_rows_[batch_->seqs[size_t(t)]].push_back(t);
    for (const auto& [seq, rows] : seq_rows_) {
      for (size_t i = 1; i < rows.size(); ++i)
        ELM_CHECK(batch_->positions[size_t(rows[i])] == batch_->positions[size_t(rows[i - 1])] + 1, "sequence ", seq,
                  ": recurrent layers need consecutive positions within a step");
      const int32_t first = batch_->positions[size_t(rows[0])];
      for (const auto& [s, r] : recurrent_)
        ELM_CHECK(first == r->length(seq), "sequence ", seq, " continues at position ", first,
                  " but its recurrent state holds ", r->length(seq),
                  " tokens (recurrent layers cannot skip or revisit positions; truncate or reset the sequence first)");
    }
  }

  // Runs a recurrent kernel over every sequence of the step. fn(rows, n, state_block) processes a run
  // of a sequence's rows. The last `snapshots` tokens go one by one, each followed by a snapshot.
  template <class Fn>
  void for_each_sequence_run(RecurrentState& st, Fn&& fn) {
    for (const auto& [seq, rows] : seq_rows_) {
      const int64_t n = int64_t(rows.size()), tail = std::min<int64_t>(n, st.snapshots());
      if (n > tail) {
        fn(rows.data(), n - tail, st.data(seq));
        st.advance(seq, int32_t(n - tail), false);
      }
      for (int64_t i = n - tail; i < n; ++i) {
        fn(rows.data() + i, 1, st.data(seq));
        st.advance(seq, 1, true);
      }
    }
  }

  // The packed copy of a quantized matrix, made once per backend; the original leaves the resident
  // set (prefill and decode read only the copy; embedding lookups of a tied table, the reference
  // kernels and other backends may still read the original, which faults back in from the page cache).
  cpu::PackedQ pack_at_load(const std::string& name, const TensorView& t) {
    const cpu::QMatrix m = cpu::qmatrix(t);
    auto [it, fresh] = packed_at_load_->tensors.try_emplace(name);
    if (fresh) {
      uint8_t* packed = packed_at_load_->memory.alloc(cpu::packed_bytes(m));
      it->second = packed;
      // Slices of about 8 MiB of the original: each is faulted in, packed and released before the
      // next, so the original and its copy are never both resident (peak RSS).
      const size_t qrow = size_t(m.type == DType::Q8 ? m.k : m.k / 2), srow = size_t(m.k / m.group) * (m.f32_scales ? 4 : 2);
      const auto parts = [&](int64_t r0, int64_t r1, auto&& fn) {
        fn(m.quants + size_t(r0) * qrow, size_t(r1 - r0) * qrow);
        fn(m.scales + size_t(r0) * srow, size_t(r1 - r0) * srow);
        if (m.mins) fn(m.mins + size_t(r0) * srow, size_t(r1 - r0) * srow);
      };
      const int64_t panels = (m.n + cpu::kPanelRows - 1) / cpu::kPanelRows;
      const int64_t step = std::max<int64_t>(1, int64_t((size_t(8) << 20) / (size_t(cpu::kPanelRows) * qrow)));
      for (int64_t p0 = 0; p0 < panels; p0 += step) {
        const int64_t p1 = std::min(panels, p0 + step);
        const int64_t r0 = p0 * cpu::kPanelRows, r1 = std::min(m.n, p1 * cpu::kPanelRows);
        parts(r0, r1, [](const uint8_t* d, size_t n) { populate_read(d, n); });
        cpu::pack_weight(m, packed, *pool_, p0, p1);
        parts(r0, r1, [&](const uint8_t* d, size_t n) { w_.release_copied(d, n); });
      }
      w_.release_copied(t.data, t.nbytes);  // the pages that straddled two slices
    }
    return cpu::PackedQ{m.type, m.n, m.k, m.group, m.f32_scales, it->second};
  }

  struct Glu {
    int32_t up, act, mul;
    cpu::Unary fn;
  };

  // Gated feed-forward patterns: gate = x Wg, up = x Wu, act(gate) * up, where the four are the
  // segment's consecutive compute nodes in that order (weights may lie between), each value read
  // only by the next step of the pattern. All four then run when the gate product's turn comes:
  // that is the order the nodes run in anyway, so every buffer holds what it would.
  void find_glus(const SegmentSpec& spec) {
    const char* env = std::getenv("ELM_CPU_FUSE");
    if (!spec.config.cpu_fuse || (env && std::string(env) == "0")) return;
    std::vector<int> readers(g_.nodes.size(), 0);
    for (int32_t n : spec.nodes)
      for (int32_t in : g_.nodes[size_t(n)].inputs)
        if (in >= 0) ++readers[size_t(in)];
    for (int32_t o : spec.outputs) ++readers[size_t(o)];
    std::vector<int32_t> compute;  // the segment's nodes other than weights, in order
    for (int32_t n : spec.nodes)
      if (g_.nodes[size_t(n)].op != Op::Weight) compute.push_back(n);
    for (size_t i = 0; i + 3 < compute.size(); ++i) {
      const int32_t gate = compute[i], up = compute[i + 1], act = compute[i + 2], mul = compute[i + 3];
      const Node &g = g_.nodes[size_t(gate)], &u = g_.nodes[size_t(up)], &a = g_.nodes[size_t(act)],
                 &m = g_.nodes[size_t(mul)];
      cpu::Unary fn;
      if (a.op == Op::Silu) fn = cpu::Unary::Silu;
      else if (a.op == Op::Gelu) fn = cpu::Unary::Gelu;
      else if (a.op == Op::GeluTanh) fn = cpu::Unary::GeluTanh;
      else continue;
      if (g.op != Op::MatMul || u.op != Op::MatMul || m.op != Op::Mul || g.inputs[0] != u.inputs[0] ||
          g.cols != u.cols || g.rows != u.rows || a.inputs[0] != gate || m.inputs.size() != 2 ||
          !((m.inputs[0] == act && m.inputs[1] == up) || (m.inputs[0] == up && m.inputs[1] == act)) ||
          readers[size_t(gate)] != 1 || readers[size_t(up)] != 1 || readers[size_t(act)] != 1)
        continue;
      glus_[gate] = Glu{up, act, mul, fn};
      fused_away_.insert({up, act, mul});
      i += 3;
    }
  }

  // The fused pattern (matmul_glu) when its weights are packed; false: run the nodes one by one.
  bool run_glu(int32_t gate, const Glu& glu) {
    const auto job = [&](int32_t m) {
      const Node& n = g_.nodes[size_t(m)];
      return cpu::MatmulJob{&matmul_weights_.at(m), n.inputs.size() > 2 ? vec(n.inputs[2]) : nullptr, nullptr};
    };
    if (spec_.config.exact_matmul) return false;
    // x is quantized before any output is written, so the product may write over x's buffer.
    return cpu::matmul_glu(value(g_.nodes[size_t(gate)].inputs[0]), rows_of(g_.nodes[size_t(gate)]), job(gate),
                           job(glu.up), glu.fn, spec_.config.act_dtype, out(glu.mul), *pool_);
  }

  void exec_rounded(int32_t id) {
    exec(id);
    if (spec_.config.act_dtype != DType::F32)
      cpu::round_activations(spec_.config.act_dtype, out(id), rows_of(g_.nodes[size_t(id)]) * g_.nodes[size_t(id)].cols);
  }

  void exec(int32_t id) {
    const Node& n = g_.nodes[size_t(id)];
    const auto in = [&](size_t k) { return k < n.inputs.size() ? n.inputs[k] : -1; };
    const int64_t R = rows_of(n), C = n.cols;
    ThreadPool& pool = *pool_;
    switch (n.op) {
      case Op::Embed:
        if (auto p = embed_packed_.find(id); p != embed_packed_.end()) {
          cpu::embed(p->second, batch_->tokens.data(), T_, out(id));
          return;
        }
        cpu::embed(tensor(in(0)), batch_->tokens.data(), T_, out(id));
        return;
      case Op::MatMul: {
        const cpu::Isa isa = spec_.config.exact_matmul ? cpu::Isa::Generic : cpu::active_isa();
        if (grouped_later_.count(id)) return;  // computed with the first of its group
        if (auto g = matmul_groups_.find(id); g != matmul_groups_.end()) {
          cpu::matmul_group(value(in(0)), R, g->second, pool, isa, spec_.config.act_dtype);
          return;
        }
        cpu::matmul(value(in(0)), R, matmul_weights_.at(id), vec(in(2)), out(id), pool, isa, spec_.config.act_dtype);
        return;
      }
      case Op::RmsNorm:
        cpu::rms_norm_fast(value(in(0)), R, C, vec(in(1)), n.attrs.i("group", C), float(n.attrs.f("eps")),
                           n.attrs.i("add_one", 0) != 0, out(id), pool);
        return;
      case Op::Add:
      case Op::Mul: {
        const Node& b = g_.nodes[size_t(in(1))];
        const bool bb = b.rows == 1;
        const float* bv = b.op == Op::Weight ? vec(in(1)) : value(in(1));
        (n.op == Op::Add ? cpu::add_fast : cpu::mul_fast)(value(in(0)), bv, R, C, bb, out(id), pool);
        return;
      }
      case Op::Scale: cpu::scale(value(in(0)), R * C, float(n.attrs.f("scale")), out(id)); return;
      case Op::Silu: cpu::silu_fast(value(in(0)), R * C, out(id), pool); return;
      case Op::Gelu: cpu::unary(cpu::Unary::Gelu, value(in(0)), R * C, out(id)); return;
      case Op::GeluTanh: cpu::unary(cpu::Unary::GeluTanh, value(in(0)), R * C, out(id)); return;
      case Op::Sigmoid: cpu::unary(cpu::Unary::Sigmoid, value(in(0)), R * C, out(id)); return;
      case Op::Softplus: cpu::unary(cpu::Unary::Softplus, value(in(0)), R * C, out(id)); return;
      case Op::Tanh: cpu::unary(cpu::Unary::Tanh, value(in(0)), R * C, out(id)); return;
      case Op::SoftCap: cpu::softcap(value(in(0)), R * C, float(n.attrs.f("cap")), out(id)); return;
      case Op::Slice: {
        const int64_t start = n.attrs.i("start"), IC = g_.nodes[size_t(in(0))].cols;
        const float* x = value(in(0));
        float* y = out(id);
        for (int64_t r = 0; r < R; ++r) std::memcpy(y + r * C, x + r * IC + start, size_t(C) * 4);
        return;
      }
      case Op::Concat: {
        float* y = out(id);
        int64_t off = 0;
        for (int32_t p : n.inputs) {
          const int64_t PC = g_.nodes[size_t(p)].cols;
          const float* x = value(p);
          for (int64_t r = 0; r < R; ++r) std::memcpy(y + r * C + off, x + r * PC, size_t(PC) * 4);
          off += PC;
        }
        return;
      }
      case Op::SliceGroups: {
        const int64_t group = n.attrs.i("group"), start = n.attrs.i("start"), len = n.attrs.i("len");
        const int64_t IC = g_.nodes[size_t(in(0))].cols, groups = IC / group;
        const float* x = value(in(0));
        float* y = out(id);
        for (int64_t r = 0; r < R; ++r)
          for (int64_t k = 0; k < groups; ++k)
            std::memcpy(y + r * C + k * len, x + r * IC + k * group + start, size_t(len) * 4);
        return;
      }
      case Op::RmsRescale: {
        const Node& ref = g_.nodes[size_t(in(1))];
        cpu::rms_rescale(value(in(0)), R, C, value(in(1)), ref.cols, float(n.attrs.f("floor")), out(id));
        return;
      }
      case Op::GaussianTopK:
        cpu::gaussian_topk(value(in(0)), R, C, float(n.attrs.f("std_mult")), out(id));
        return;
      case Op::StreamMix: {
        const Node& x = g_.nodes[size_t(in(0))];
        const Node& coefs = g_.nodes[size_t(in(1))];
        const int64_t streams = n.attrs.i("streams");
        const float* cv = coefs.op == Op::Weight ? vec(in(1)) : value(in(1));
        cpu::stream_mix(value(in(0)), R, streams, x.cols / streams, cv, coefs.cols / streams, coefs.rows == 1,
                        out(id));
        return;
      }
      case Op::CausalConv1d: {
        const float* x = value(in(0));
        const float* w = vec(in(1));
        const int64_t K = g_.nodes[size_t(in(1))].cols;
        float* y = out(id);
        for_each_sequence_run(*recurrent_.at(n.attrs.i("state")), [&](const int64_t* rows, int64_t count, float* win) {
          cpu::causal_conv1d(x, rows, count, C, w, K, win, y);
        });
        return;
      }
      case Op::GatedDeltaRule: {
        cpu::DeltaRuleArgs a;
        a.q = value(in(0)), a.k = value(in(1)), a.v = value(in(2)), a.g = value(in(3)), a.beta = value(in(4));
        a.out = out(id);
        a.k_heads = n.attrs.i("k_heads"), a.v_heads = n.attrs.i("v_heads");
        a.dk = n.attrs.i("head_dim"), a.dv = n.attrs.i("v_head_dim", a.dk);
        a.scale = float(n.attrs.f("scale"));
        a.l2norm = n.attrs.i("l2norm", 0) != 0;
        for_each_sequence_run(*recurrent_.at(n.attrs.i("state")), [&](const int64_t* rows, int64_t count, float* S) {
          if (count > 1) cpu::gated_delta_rule_chunked(a, rows, count, S, pool);
          else cpu::gated_delta_rule_recurrent(a, rows, count, S, pool);
        });
        return;
      }
      case Op::OutputRows: {
        const float* x = value(in(0));
        float* y = out(id);
        for (size_t r = 0; r < out_rows_.size(); ++r) std::memcpy(y + int64_t(r) * C, x + out_rows_[r] * C, size_t(C) * 4);
        return;
      }
      case Op::Rope: {
        // Angles once per step for every rope node sharing the frequencies (all layers, q and k).
        const Node& f = g_.nodes[size_t(in(2))];
        const float factor = float(n.attrs.f("attn_factor", 1.0));
        std::vector<float>& table = rope_tables_[{in(2), factor}];
        if (table.empty()) {
          table.resize(size_t(T_ * 2 * f.cols));
          cpu::rope_table(batch_->positions.data(), T_, vec(in(2)), f.cols, factor, table.data());
        }
        cpu::rope_apply_fast(value(in(0)), out(id), R, C, table.data(), f.cols, n.attrs.i("head_dim"),
                             n.attrs.i("pairs", 0) != 0, pool);
        return;
      }
      case Op::Attention: {
        KvCache& cache = *caches_.at(n.attrs.i("state"));
        if (n.attrs.i("write", 1)) {
          const float* k = value(in(1));
          const float* v = value(in(2));
          const int64_t kc = cache.kv_heads() * cache.head_dim(), vc = cache.kv_heads() * cache.v_head_dim();
          for (int64_t t = 0; t < T_; ++t)
            cache.write(batch_->seqs[size_t(t)], batch_->positions[size_t(t)], k + t * kc, v + t * vc);
        }
        cpu::AttentionParams p;
        p.heads = n.attrs.i("heads");
        p.scale = float(n.attrs.f("scale"));
        p.softcap = float(n.attrs.f("softcap", 0));
        p.window = n.attrs.i("window", 0);
        cpu::attention(value(in(0)), T_, batch_->positions.data(), batch_->seqs.data(), cache, p, out(id), pool);
        return;
      }
      case Op::Weight:
      case Op::TokenIds:
      case Op::Positions:
      case Op::Count: break;
    }
    fail("cpu backend: cannot execute op ", op_name(n.op));
  }

  const Graph& g_;
  const WeightStore& w_;
  SegmentSpec spec_;
  std::shared_ptr<ThreadPool> pool_;
  std::vector<int> slot_;
  std::vector<bool> in_segment_, boundary_in_;
  std::vector<ZeroedArray<float>> buffers_;  // pages become resident as rows are used
  std::map<int32_t, std::vector<float>> vectors_;
  std::shared_ptr<KvCaches> kv_;
  std::map<int64_t, KvCache*> caches_;  // the caches this segment's attention nodes use (reset and
                                        // truncation are idempotent, so sharing segments may repeat them)
  std::vector<const KvCache*> written_;
  std::map<int64_t, std::unique_ptr<RecurrentState>> recurrent_;
  std::map<int, std::vector<int64_t>> seq_rows_;  // this step's rows per sequence (recurrent layers)
  std::map<std::string, cpu::PackedQ> packed_;  // views into spec_.artifact
  std::shared_ptr<PackedAtLoad> packed_at_load_;
  std::map<int32_t, cpu::MatmulWeight> matmul_weights_;
  std::map<int32_t, cpu::PackedQ> embed_packed_;  // Embed nodes whose table a product here packed
  std::map<int32_t, std::vector<cpu::MatmulJob>> matmul_groups_;  // first product -> all of its group
  std::set<int32_t> grouped_later_;                        // the others (computed with the first)
  std::map<int32_t, Glu> glus_;  // gate product -> the rest of its gated feed-forward pattern
  std::set<int32_t> fused_away_;  // up, act and mul of those: run with their gate product
  std::map<std::pair<int32_t, float>, std::vector<float>> rope_tables_;  // this step's cos/sin per frequency table
  BoundaryValues* io_ = nullptr;
  const Batch* batch_ = nullptr;
  int64_t T_ = 0;
  std::vector<int64_t> out_rows_;
  std::unique_ptr<OpProfile> profile_ = OpProfile::from_env();
};

// One instance serves one graph (an Executor makes its own backends), so state ids key its caches.
class CpuBackend : public Backend {
 public:
  explicit CpuBackend(const RuntimeConfig& c) : pool_(std::make_shared<ThreadPool>(c.threads)) {}
  std::string name() const override { return "cpu"; }
  bool supports(const Graph&, const WeightStore&, int32_t) const override { return true; }
  std::unique_ptr<Segment> prepare(const SegmentSpec& spec) override {
    return std::make_unique<CpuSegment>(spec, pool_, kv_, packed_at_load_);
  }
  // The packed weights (cpu_artifact.h); empty when the segment has no quantized matmul.
  std::vector<uint8_t> compile(const SegmentSpec& spec) override { return cpu::build_artifact(spec, *pool_); }
  bool accepts_artifact(std::span<const uint8_t> artifact) const override { return cpu::is_artifact(artifact); }

 private:
  std::shared_ptr<ThreadPool> pool_;
  std::shared_ptr<KvCaches> kv_ = std::make_shared<KvCaches>();
  std::shared_ptr<PackedAtLoad> packed_at_load_ = std::make_shared<PackedAtLoad>();
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const RuntimeConfig& config) { return std::make_unique<CpuBackend>(config); }

}  // namespace elm
