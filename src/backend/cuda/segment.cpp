#include "backend/cuda/segment.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backend/partition.h"

namespace elm::cuda {

namespace {

// Steps of at most this many tokens are captured as CUDA graphs.
constexpr int64_t kGraphMaxTokens = 8;
constexpr size_t kMaxGraphs = 32;

bool env_off(const char* name) {
  const char* v = std::getenv(name);
  return v && std::strcmp(v, "0") == 0;
}

GateAct gate_of(Op op) {
  switch (op) {
    case Op::Silu: return GateAct::Silu;
    case Op::Gelu: return GateAct::Gelu;
    case Op::GeluTanh: return GateAct::GeluTanh;
    default: return GateAct::None;
  }
}

// Arithmetic of prefill products. Float32 activations: exact float32, except for quantized weights
// (approximations already), which take the f16 tensor cores. F16 / BF16 activations: tensor cores in
// that type (bf16 weights are converted to f16 when f16 is asked for: exact for their range).
// The logits (the graph output) are always float32 arithmetic on plain weights: they are the most
// precision-sensitive product and rarely a prefill cost (generation asks for one row).
MmaType mma_for(DType act, DType weight, bool logits) {
  if (act == DType::F32 || (logits && !is_quantized(weight))) return is_quantized(weight) ? MmaType::F16 : MmaType::F32;
  return act == DType::BF16 ? MmaType::BF16 : MmaType::F16;
}

EwOp ew_of(Op op) {
  switch (op) {
    case Op::Add: return EwOp::Add;
    case Op::Mul: return EwOp::Mul;
    case Op::Scale: return EwOp::Scale;
    case Op::Silu: return EwOp::Silu;
    case Op::Gelu: return EwOp::Gelu;
    case Op::GeluTanh: return EwOp::GeluTanh;
    case Op::Sigmoid: return EwOp::Sigmoid;
    case Op::Softplus: return EwOp::Softplus;
    case Op::Tanh: return EwOp::Tanh;
    default: return EwOp::SoftCap;
  }
}

}  // namespace

SegmentOptions segment_options_from_env() {
  SegmentOptions o;
  o.fuse = !env_off("ELM_CUDA_FUSE");
  o.graphs = !env_off("ELM_CUDA_GRAPHS");
  const char* t = std::getenv("ELM_CUDA_TIMING");
  o.timing = t && std::strcmp(t, "1") == 0;
  return o;
}

CudaSegment::CudaSegment(const SegmentSpec& spec, std::shared_ptr<Context> ctx, const SegmentOptions& options)
    : g_(*spec.graph), w_(*spec.weights), spec_(spec), ctx_(std::move(ctx)), options_(options) {
  LowerOptions lo;
  lo.fuse = options.fuse;
  steps_ = lower(g_, w_, spec_.nodes, spec_.outputs, lo);
  prep_.resize(steps_.size());
  for (size_t i = 0; i < steps_.size(); ++i) prepare_step(i);
  allocate_values();

  const int64_t mb = spec_.config.max_batch;
  params_ = DeviceBuffer(size_t(4 * mb) * 4);
  host_params_ = PinnedBuffer(size_t(4 * mb) * 4);
  ids_ = DeviceBuffer(size_t(mb) * 4);
  seq_end_.assign(size_t(spec_.config.max_seqs), 0);
  argmax_scratch_ = DeviceBuffer(argmax_scratch_bytes(int(mb)));
  ELM_CUDA_CHECK(cudaMemset(argmax_scratch_.get(), 0, argmax_scratch_bytes(int(mb))));
  host_ids_ = PinnedBuffer(size_t(mb) * 4);
  // Transfers are laid out in the staging buffer at fixed offsets (captured graphs keep the addresses).
  size_t io_floats = 0;
  for (const Transfer& t : inputs_) io_floats += size_t(mb * g_.nodes[size_t(t.node)].cols);
  for (const Transfer& t : outputs_) io_floats += size_t(mb * g_.nodes[size_t(t.node)].cols);
  host_io_ = PinnedBuffer(std::max<size_t>(io_floats, 1) * 4);
  float* p = host_io_.as<float>();
  for (Transfer& t : inputs_) t.host = p, p += mb * g_.nodes[size_t(t.node)].cols;
  for (Transfer& t : outputs_) t.host = p, p += mb * g_.nodes[size_t(t.node)].cols;
  if (options_.timing) {
    ELM_CUDA_CHECK(cudaEventCreate(&ev_begin_));
    ELM_CUDA_CHECK(cudaEventCreate(&ev_end_));
  }
  // Everything above was set up with synchronous calls on the default stream; the steps run on a
  // non-blocking stream, so wait for it all here.
  ELM_CUDA_CHECK(cudaDeviceSynchronize());
}

CudaSegment::~CudaSegment() {
  if (!options_.timing) return;
  for (const auto& [T, t] : timing_)
    std::fprintf(stderr, "cuda segment (%zu steps): %d runs of %lld tokens: device %.3f ms, host %.3f ms per run\n",
                 steps_.size(), t.steps, (long long)T, t.device_ms / t.steps, t.host_ms / t.steps);
  cudaEventDestroy(ev_begin_);
  cudaEventDestroy(ev_end_);
}

void CudaSegment::prepare_step(size_t i) {
  const Step& st = steps_[i];
  Prepared& p = prep_[i];
  const Node& n = g_.nodes[size_t(st.node)];
  auto weight_name = [&](int32_t id) -> const std::string& { return g_.nodes[size_t(id)].name; };
  auto is_weight = [&](int32_t id) { return id >= 0 && g_.nodes[size_t(id)].op == Op::Weight; };
  switch (st.kind) {
    case Step::Kind::Matmul: {
      MatmulArgs& a = p.mm;
      a.K = int(g_.nodes[size_t(st.x)].cols);
      if (st.norm >= 0) {
        const Node& nn = g_.nodes[size_t(st.norm)];
        a.norm = true;
        a.eps = float(nn.attrs.f("eps"));
        a.norm_add_one = nn.attrs.i("add_one", 0) != 0;
        a.norm_w = nn.inputs.size() > 1 && nn.inputs[1] >= 0 ? ctx_->vector(w_, weight_name(nn.inputs[1])) : nullptr;
      }
      a.n = int(st.outs.size());
      ELM_CHECK(a.n >= 1 && a.n <= 3, "cuda: a product step has ", a.n, " products");
      for (int k = 0; k < a.n; ++k) {
        const Node& mm = g_.nodes[size_t(st.outs[size_t(k)].matmul)];
        a.w[k] = ctx_->matrix(w_, weight_name(mm.inputs[1]));
        a.bias[k] = mm.inputs.size() > 2 && mm.inputs[2] >= 0 ? ctx_->vector(w_, weight_name(mm.inputs[2])) : nullptr;
      }
      a.gate = gate_of(st.gate);
      // The output head: a product of the requested rows as wide as the logits (quant's Output role).
      bool logits = false;
      for (const MatmulOut& o : st.outs) {
        const Node& mm = g_.nodes[size_t(o.matmul)];
        logits = logits || (mm.rows == kRowsOut && g_.output >= 0 && mm.cols == g_.nodes[size_t(g_.output)].cols);
      }
      a.mma = mma_for(spec_.config.act_dtype, a.w[0].dtype, logits);
      return;
    }
    case Step::Kind::Attention: {
      const int64_t s = n.attrs.i("state");
      bool created = false;
      p.kv = &ctx_->kv_state(s, g_.states[size_t(s)].attrs, created);
      states_[s] = p.kv;
      if (created) owned_state_bytes_ += p.kv->bytes();
      if (st.rope_q >= 0) p.rope_q = rope_args(st.rope_q);
      if (st.rope_k >= 0) p.rope_k = rope_args(st.rope_k);
      return;
    }
    case Step::Kind::Op: break;
  }
  switch (n.op) {
    case Op::Embed:
      p.table = ctx_->matrix(w_, weight_name(n.inputs[0]));
      p.table_rows = w_.get(weight_name(n.inputs[0])).rows();
      return;
    case Op::RmsNorm:
      if (n.inputs.size() > 1 && n.inputs[1] >= 0) p.vec = ctx_->vector(w_, weight_name(n.inputs[1]));
      return;
    case Op::Add:
    case Op::Mul:
      if (is_weight(n.inputs[1])) p.vec = ctx_->vector(w_, weight_name(n.inputs[1]));
      if (is_weight(n.inputs[0])) fail("cuda: ", op_name(n.op), " with a weight as first operand");
      return;
    case Op::Rope: p.rope_q = rope_args(st.node); return;
    case Op::MatMul:
    case Op::Attention: fail("cuda: ", op_name(n.op), " outside its step");
    default: return;
  }
}

RopeArgs CudaSegment::rope_args(int32_t rope_node) {
  const Node& r = g_.nodes[size_t(rope_node)];
  const Node& f = g_.nodes[size_t(r.inputs[2])];
  RopeArgs a;
  a.inv_freq = ctx_->vector(w_, f.name);
  a.F = int(f.cols);
  a.head_dim = int(r.attrs.i("head_dim"));
  a.pairs = r.attrs.i("pairs", 0) != 0;
  a.attn_factor = float(r.attrs.f("attn_factor", 1.0));
  return a;
}

void CudaSegment::allocate_values() {
  const size_t N = g_.nodes.size();
  const int64_t mb = spec_.config.max_batch;
  value_.assign(N, nullptr);
  std::vector<bool> is_output(N, false);
  for (int32_t o : spec_.outputs) is_output[size_t(o)] = true;

  // Boundary inputs: own buffers, filled at the start of every step.
  for (int32_t in : spec_.inputs) {
    buffers_.emplace_back(size_t(mb * g_.nodes[size_t(in)].cols) * 4);
    value_[size_t(in)] = buffers_.back().as<float>();
    inputs_.push_back({in, value_[size_t(in)], nullptr});
  }
  // Produced values: greedy reuse of dead buffers, in step order.
  std::vector<size_t> last_read(N, 0);
  std::vector<bool> read(N, false);
  for (size_t i = 0; i < steps_.size(); ++i)
    for (int32_t r : steps_[i].reads) last_read[size_t(r)] = i, read[size_t(r)] = true;
  std::vector<size_t> free_list;
  std::vector<size_t> owned(N, SIZE_MAX);  // node -> buffer index (produced values)
  for (size_t i = 0; i < steps_.size(); ++i) {
    for (int32_t v : steps_[i].writes) {
      const size_t need = size_t(mb * g_.nodes[size_t(v)].cols) * 4;
      size_t chosen = SIZE_MAX;
      for (size_t f = 0; f < free_list.size(); ++f) {
        if (buffers_[free_list[f]].size() >= need) {
          chosen = free_list[f];
          free_list.erase(free_list.begin() + long(f));
          break;
        }
      }
      if (chosen == SIZE_MAX) {
        buffers_.emplace_back(need);
        chosen = buffers_.size() - 1;
      }
      owned[size_t(v)] = chosen;
    }
    // Release what this step read last, after its outputs were placed (no step writes over its inputs),
    // and what nothing reads.
    for (int32_t r : steps_[i].reads)
      if (owned[size_t(r)] != SIZE_MAX && last_read[size_t(r)] == i && !is_output[size_t(r)])
        free_list.push_back(owned[size_t(r)]);
    for (int32_t v : steps_[i].writes)
      if (!read[size_t(v)] && !is_output[size_t(v)]) free_list.push_back(owned[size_t(v)]);
  }
  for (size_t v = 0; v < N; ++v)
    if (owned[v] != SIZE_MAX) value_[v] = buffers_[owned[v]].as<float>();
  for (int32_t o : spec_.outputs) {
    ELM_CHECK(value_[size_t(o)], "cuda: segment output ", o, " is not materialized");
    outputs_.push_back({o, value_[size_t(o)], nullptr});
  }

  // Workspaces: the tiled products' scratch, the attention partials.
  size_t scratch = 0, work = 0, counters = 0;
  for (size_t i = 0; i < steps_.size(); ++i) {
    const Step& st = steps_[i];
    if (st.kind == Step::Kind::Matmul) {
      scratch = std::max(scratch, matmul_scratch_floats(prep_[i].mm, int(mb)));
    }
    if (st.kind == Step::Kind::Attention) {
      const Node& n = g_.nodes[size_t(st.node)];
      const KvView& kv = prep_[i].kv->view;
      work = std::max(work, attention_work_floats(int(mb), int(n.attrs.i("heads")), kv.v_head_dim, kv.cap));
      counters = std::max(counters, attention_counters(int(mb), int(n.attrs.i("heads"))));
    }
  }
  scratch_ = DeviceBuffer(scratch * 4);
  attn_work_ = DeviceBuffer(work * 4);
  attn_counters_ = DeviceBuffer(counters * 4);
  if (counters) ELM_CUDA_CHECK(cudaMemset(attn_counters_.get(), 0, attn_counters_.size()));
  for (Prepared& p : prep_) p.mm.scratch = scratch_.as<float>();
}

int64_t CudaSegment::rows_of(int32_t node) const {
  const int64_t r = g_.nodes[size_t(node)].rows;
  return r == kRowsT ? T_ : r == kRowsOut ? n_out_ : r;
}

float* CudaSegment::value(int32_t node) const {
  float* p = value_[size_t(node)];
  ELM_CHECK(p, "cuda: value of node ", node, " is not on the device");
  return p;
}

void CudaSegment::run(const Batch& b, BoundaryValues& io) { run_step(b, io, -1); }

bool CudaSegment::run_argmax(const Batch& b, BoundaryValues& io, int32_t logits, std::vector<int32_t>& ids) {
  if (std::none_of(outputs_.begin(), outputs_.end(), [&](const Transfer& t) { return t.node == logits; }))
    return false;
  run_step(b, io, logits);
  ids.assign(host_ids_.as<int32_t>(), host_ids_.as<int32_t>() + rows_of(logits));
  return true;
}

void CudaSegment::run_step(const Batch& b, BoundaryValues& io, int32_t argmax_node) {
  const int64_t T = b.size();
  const RuntimeConfig& c = spec_.config;
  ELM_CHECK(T > 0 && T <= c.max_batch, "batch of ", T, " tokens (at most ", c.max_batch, ")");
  for (int64_t t = 0; t < T; ++t) {
    ELM_CHECK(b.seqs[size_t(t)] >= 0 && b.seqs[size_t(t)] < c.max_seqs, "sequence ", b.seqs[size_t(t)],
              " is out of range");
    ELM_CHECK(b.positions[size_t(t)] >= 0 && b.positions[size_t(t)] < c.n_ctx, "position ", b.positions[size_t(t)],
              " is outside the context of ", c.n_ctx, " tokens");
  }
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (steps_[i].kind != Step::Kind::Op || g_.nodes[size_t(steps_[i].node)].op != Op::Embed) continue;
    for (int32_t id : b.tokens)
      ELM_CHECK(id >= 0 && id < prep_[i].table_rows, "token id ", id, " is outside the vocabulary (",
                prep_[i].table_rows, " tokens)");
  }
  for (int64_t t = 0; t < T; ++t) {
    int32_t& end = seq_end_[size_t(b.seqs[size_t(t)])];
    end = std::max(end, b.positions[size_t(t)] + 1);
  }
  T_ = T;
  n_out_ = b.n_outputs();
  single_seq_ = std::all_of(b.seqs.begin(), b.seqs.end(), [&](int32_t s) { return s == b.seqs[0]; });
  argmax_node_ = argmax_node;

  // The step's batch data, packed: tokens, positions, seqs, output rows.
  int32_t* hp = host_params_.as<int32_t>();
  std::memcpy(hp, b.tokens.data(), size_t(T) * 4);
  std::memcpy(hp + T, b.positions.data(), size_t(T) * 4);
  std::memcpy(hp + 2 * T, b.seqs.data(), size_t(T) * 4);
  int64_t k = 0;
  for (int64_t t = 0; t < T; ++t)
    if (b.want_output[size_t(t)]) hp[3 * T + k++] = int32_t(t);
  const int32_t* dp = params_.as<int32_t>();
  d_tokens_ = dp, d_positions_ = dp + T, d_seqs_ = dp + 2 * T, d_out_rows_ = dp + 3 * T;

  for (const Transfer& t : inputs_) {
    const HostTensor& h = io.at(t.node);
    const Node& n = g_.nodes[size_t(t.node)];
    ELM_CHECK(h.rows == rows_of(t.node) && h.cols == n.cols, "cuda: boundary value ", t.node, " has shape [", h.rows,
              ", ", h.cols, "]");
    std::memcpy(t.host, h.data.data(), h.data.size() * 4);
  }

  cudaStream_t s = ctx_->stream();
  const auto host_t0 = std::chrono::steady_clock::now();
  if (options_.timing) ELM_CUDA_CHECK(cudaEventRecord(ev_begin_, s));
  if (options_.graphs && T <= kGraphMaxTokens) {
    GraphSlot& slot = graphs_[GraphKey{T, n_out_, single_seq_, argmax_node}];
    if (slot.ready) {
      slot.exec.launch(s);
    } else if (slot.seen++ == 0 || graphs_.size() > kMaxGraphs) {
      enqueue(s);  // first time eagerly: kernels are loaded and configured outside any capture
    } else {
      ELM_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      cudaGraph_t graph = nullptr;
      try {
        enqueue(s);
      } catch (...) {
        cudaStreamEndCapture(s, &graph);
        if (graph) cudaGraphDestroy(graph);
        throw;
      }
      ELM_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
      slot.exec = GraphExec(graph);
      cudaGraphDestroy(graph);
      slot.ready = true;
      slot.exec.launch(s);
    }
  } else {
    enqueue(s);
  }
  if (options_.timing) ELM_CUDA_CHECK(cudaEventRecord(ev_end_, s));
  ELM_CUDA_CHECK(cudaStreamSynchronize(s));
  if (options_.timing) {
    float ms = 0;
    ELM_CUDA_CHECK(cudaEventElapsedTime(&ms, ev_begin_, ev_end_));
    Timing& tm = timing_[T];
    ++tm.steps;
    tm.device_ms += ms;
    tm.host_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - host_t0).count();
  }

  for (const Transfer& t : outputs_) {
    if (t.node == argmax_node) continue;
    HostTensor& h = io[t.node];
    h.resize(rows_of(t.node), g_.nodes[size_t(t.node)].cols);
    std::memcpy(h.data.data(), t.host, h.data.size() * 4);
  }
}

void CudaSegment::enqueue(cudaStream_t s) {
  PdlScope pdl(T_ <= kGraphMaxTokens);
  ELM_CUDA_CHECK(cudaMemcpyAsync(params_.get(), host_params_.as<int32_t>(), size_t(3 * T_ + n_out_) * 4,
                                 cudaMemcpyHostToDevice, s));
  for (const Transfer& t : inputs_) {
    const size_t n = size_t(rows_of(t.node) * g_.nodes[size_t(t.node)].cols);
    if (n) ELM_CUDA_CHECK(cudaMemcpyAsync(t.dev, t.host, n * 4, cudaMemcpyHostToDevice, s));
  }
  for (size_t i = 0; i < steps_.size(); ++i) exec(i, s);
  if (argmax_node_ >= 0 && rows_of(argmax_node_) > 0) {
    argmax_rows(value(argmax_node_), int(rows_of(argmax_node_)), int(g_.nodes[size_t(argmax_node_)].cols),
                ids_.as<int32_t>(), argmax_scratch_.get(), s);
    ELM_CUDA_CHECK(cudaMemcpyAsync(host_ids_.as<int32_t>(), ids_.get(), size_t(rows_of(argmax_node_)) * 4,
                                   cudaMemcpyDeviceToHost, s));
  }
  for (const Transfer& t : outputs_) {
    if (t.node == argmax_node_) continue;
    const size_t n = size_t(rows_of(t.node) * g_.nodes[size_t(t.node)].cols);
    if (n) ELM_CUDA_CHECK(cudaMemcpyAsync(t.host, t.dev, n * 4, cudaMemcpyDeviceToHost, s));
  }
}

void CudaSegment::exec(size_t i, cudaStream_t s) {
  const Step& st = steps_[i];
  const Prepared& p = prep_[i];
  const Node& n = g_.nodes[size_t(st.node)];
  if (st.kind == Step::Kind::Matmul) {
    MatmulArgs a = p.mm;
    a.T = int(rows_of(st.x));
    if (a.T == 0) return;
    a.x = value(st.x);
    for (int k = 0; k < a.n; ++k) {
      const MatmulOut& o = st.outs[size_t(k)];
      a.y[k] = st.gate == Op::Count ? value(o.value) : nullptr;
      a.residual[k] = o.residual >= 0 ? value(o.residual) : nullptr;
    }
    if (st.gate != Op::Count) a.y[0] = value(st.gated);
    matmul(a, s);
    return;
  }
  if (st.kind == Step::Kind::Attention) {
    const KvView& kv = p.kv->view;
    const int32_t q = st.rope_q >= 0 ? g_.nodes[size_t(st.rope_q)].inputs[0] : n.inputs[0];
    AttnArgs a;
    if (n.attrs.i("write", 1)) {
      a.k_new = value(st.rope_k >= 0 ? g_.nodes[size_t(st.rope_k)].inputs[0] : n.inputs[1]);
      a.v_new = value(n.inputs[2]);
      a.rope_k = p.rope_k;
    }
    a.q = value(q);
    a.rope_q = p.rope_q;
    a.T = int(T_);
    a.heads = int(n.attrs.i("heads"));
    a.scale = float(n.attrs.f("scale"));
    a.softcap = float(n.attrs.f("softcap", 0));
    a.window = int(n.attrs.i("window", 0));
    a.single_seq = single_seq_;
    a.tensor_cores = spec_.config.act_dtype != DType::F32;
    a.out = value(st.node);
    a.work = attn_work_.as<float>();
    a.counters = attn_counters_.as<int>();
    attention(a, kv, d_positions_, d_seqs_, s);
    return;
  }
  const int64_t R = rows_of(st.node), C = n.cols;
  if (R == 0) return;
  const auto in = [&](size_t k) { return k < n.inputs.size() ? n.inputs[k] : -1; };
  switch (n.op) {
    case Op::Embed: embed(p.table, d_tokens_, int(R), value(st.node), s); return;
    case Op::RmsNorm:
      rms_norm(value(in(0)), int(R), int(C), p.vec, int(n.attrs.i("group", C)), float(n.attrs.f("eps")),
               n.attrs.i("add_one", 0) != 0, value(st.node), s);
      return;
    case Op::Add:
    case Op::Mul: {
      const bool bw = g_.nodes[size_t(in(1))].op == Op::Weight;
      elementwise(ew_of(n.op), value(in(0)), bw ? p.vec : value(in(1)), bw, int(R), int(C), 0.f, value(st.node), s);
      return;
    }
    case Op::Scale:
      elementwise(EwOp::Scale, value(in(0)), nullptr, false, int(R), int(C), float(n.attrs.f("scale")), value(st.node), s);
      return;
    case Op::SoftCap:
      elementwise(EwOp::SoftCap, value(in(0)), nullptr, false, int(R), int(C), float(n.attrs.f("cap")), value(st.node), s);
      return;
    case Op::Silu:
    case Op::Gelu:
    case Op::GeluTanh:
    case Op::Sigmoid:
    case Op::Softplus:
    case Op::Tanh:
      elementwise(ew_of(n.op), value(in(0)), nullptr, false, int(R), int(C), 0.f, value(st.node), s);
      return;
    case Op::Slice:
      copy_cols(value(in(0)), int(R), int(g_.nodes[size_t(in(0))].cols), int(n.attrs.i("start")), int(C),
                value(st.node), int(C), 0, s);
      return;
    case Op::Concat: {
      int off = 0;
      for (int32_t part : n.inputs) {
        const int pc = int(g_.nodes[size_t(part)].cols);
        copy_cols(value(part), int(R), pc, 0, pc, value(st.node), int(C), off, s);
        off += pc;
      }
      return;
    }
    case Op::OutputRows: gather_rows(value(in(0)), int(C), d_out_rows_, int(R), value(st.node), s); return;
    case Op::Rope: rope(value(in(0)), int(R), int(C), d_positions_, p.rope_q, value(st.node), s); return;
    default: fail("cuda backend: cannot execute op ", op_name(n.op));
  }
}

void CudaSegment::seq_reset(int seq) {
  ELM_CHECK(seq >= 0 && seq < spec_.config.max_seqs, "sequence ", seq, " is out of range");
  for (auto& [id, kv] : states_) kv_reset(kv->view, seq, ctx_->stream());
  seq_end_[size_t(seq)] = 0;
}

void CudaSegment::seq_truncate(int seq, int32_t n_past) {
  ELM_CHECK(seq >= 0 && seq < spec_.config.max_seqs, "sequence ", seq, " is out of range");
  // Nothing at or past n_past: no launches (speculative rounds that accept every draft).
  if (n_past >= seq_end_[size_t(seq)]) return;
  for (auto& [id, kv] : states_) kv_truncate(kv->view, seq, n_past, ctx_->stream());
  seq_end_[size_t(seq)] = n_past;
}

size_t CudaSegment::state_bytes() const { return owned_state_bytes_; }

}  // namespace elm::cuda
