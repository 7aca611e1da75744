#include "quant/calibration.h"

#include <algorithm>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "quant/gptq.h"
#include "runtime/executor.h"
#include "runtime/model.h"
#include "runtime/sampler.h"

namespace elm {

namespace {

// Running sums over the rows of one matmul input (a graph node; q, k and v projections share one).
struct InputSums {
  int64_t cols = 0, rows = 0;
  std::vector<double> sum_sq;  // [cols]
  std::vector<double> sum_outer;  // [cols, cols] upper triangle, when the second moment is wanted
};

struct Accumulators {
  std::map<int32_t, InputSums> inputs;                  // by input node
  std::map<std::string, std::vector<int32_t>> readers;  // weight name -> the input nodes it multiplies
  int64_t max_gptq_cols = 0;
  int64_t gptq_budget_bytes = 0;  // left for second-moment sums
  ThreadPool* pool = nullptr;

  void add(int32_t node, const HostTensor& x) {
    InputSums& s = inputs.at(node);
    ELM_CHECK(x.cols == s.cols, "calibration: matmul input of ", x.cols, " columns, expected ", s.cols);
    for (int64_t r = 0; r < x.rows; ++r) {
      const float* row = x.row(r);
      for (int64_t k = 0; k < x.cols; ++k) s.sum_sq[size_t(k)] += double(row[k]) * row[k];
    }
    s.rows += x.rows;
    if (s.sum_outer.empty()) return;
    // sum_outer[i][j] += sum_r x[r][i] x[r][j] for j >= i: one output row per task, summed in float
    // over this step's rows (at most a chunk) and added to the double totals.
    const int64_t K = x.cols;
    pool->parallel_for(K, [&](int64_t i0, int64_t i1) {
      std::vector<float> acc(static_cast<size_t>(K));
      for (int64_t i = i0; i < i1; ++i) {
        std::fill(acc.begin() + i, acc.end(), 0.f);
        for (int64_t r = 0; r < x.rows; ++r) {
          const float* row = x.row(r);
          const float a = row[i];
          if (a == 0.f) continue;
          for (int64_t j = i; j < K; ++j) acc[size_t(j)] += a * row[j];
        }
        double* out = s.sum_outer.data() + i * K;
        for (int64_t j = i; j < K; ++j) out[j] += acc[size_t(j)];
      }
    });
  }
};

bool is_weight_matmul(const Graph& g, int32_t node) {
  const Node& n = g.nodes[size_t(node)];
  return n.op == Op::MatMul && n.inputs.size() >= 2 && n.inputs[1] >= 0 && g.nodes[size_t(n.inputs[1])].op == Op::Weight;
}

// Runs its nodes on the CPU like the fallback would, and afterwards reads the input of every matmul
// from the boundary values (inputs produced inside the segment are made outputs so they land there).
class ProbeSegment : public Segment {
 public:
  ProbeSegment(std::unique_ptr<Segment> inner, std::vector<int32_t> probed, Accumulators& acc)
      : inner_(std::move(inner)), probed_(std::move(probed)), acc_(acc) {}
  void run(const Batch& batch, BoundaryValues& io) override {
    inner_->run(batch, io);
    for (int32_t x : probed_) acc_.add(x, io.at(x));
  }
  void seq_reset(int seq) override { inner_->seq_reset(seq); }
  void seq_truncate(int seq, int32_t n_past) override { inner_->seq_truncate(seq, n_past); }

 private:
  std::unique_ptr<Segment> inner_;
  std::vector<int32_t> probed_;  // distinct input nodes
  Accumulators& acc_;
};

// Claims the matmuls against weights, so the partitioner cuts the graph at every one of them.
class ProbeBackend : public Backend {
 public:
  ProbeBackend(const RuntimeConfig& config, Accumulators& acc) : cpu_(make_cpu_backend(config)), acc_(acc) {}
  std::string name() const override { return "calibration-probe"; }
  bool supports(const Graph& g, const WeightStore& w, int32_t node) const override {
    return is_weight_matmul(g, node) && cpu_->supports(g, w, node);
  }
  std::unique_ptr<Segment> prepare(const SegmentSpec& spec) override {
    const Graph& g = *spec.graph;
    SegmentSpec s = spec;
    std::vector<int32_t> probed;
    for (int32_t node : spec.nodes) {
      const Node& n = g.nodes[size_t(node)];
      const int32_t x = n.inputs[0];
      const bool inside = std::find(spec.nodes.begin(), spec.nodes.end(), x) != spec.nodes.end();
      if (inside && std::find(s.outputs.begin(), s.outputs.end(), x) == s.outputs.end()) s.outputs.push_back(x);
      std::vector<int32_t>& readers = acc_.readers[g.nodes[size_t(n.inputs[1])].name];
      if (std::find(readers.begin(), readers.end(), x) == readers.end()) readers.push_back(x);
      if (std::find(probed.begin(), probed.end(), x) != probed.end()) continue;
      probed.push_back(x);
      InputSums& sums = acc_.inputs[x];
      sums.cols = g.nodes[size_t(x)].cols;
      sums.sum_sq.assign(size_t(sums.cols), 0.0);
      const int64_t bytes = sums.cols * sums.cols * int64_t(sizeof(double));
      if (sums.cols <= acc_.max_gptq_cols && bytes <= acc_.gptq_budget_bytes) {
        sums.sum_outer.assign(size_t(sums.cols * sums.cols), 0.0);
        acc_.gptq_budget_bytes -= bytes;
      }
    }
    return std::make_unique<ProbeSegment>(cpu_->prepare(s), std::move(probed), acc_);
  }

 private:
  std::unique_ptr<Backend> cpu_;
  Accumulators& acc_;
};

}  // namespace

const float* ActivationStats::column_weights(const std::string& tensor, int64_t cols) const {
  const auto it = mean_square.find(tensor);
  return it != mean_square.end() && int64_t(it->second.size()) == cols ? it->second.data() : nullptr;
}

MatrixCalibration ActivationStats::for_matrix(const std::string& tensor, int64_t cols) const {
  MatrixCalibration c;
  c.column_weights = column_weights(tensor, cols);
  const auto it = second_moment.find(tensor);
  if (!c.column_weights || it == second_moment.end() || int64_t(it->second->size()) != cols * cols) return c;
  auto f = factors_.find(it->second.get());
  if (f == factors_.end()) f = factors_.emplace(it->second.get(), gptq_factor(it->second->data(), cols)).first;
  c.gptq_factor = f->second.data();
  return c;
}

std::vector<int32_t> sample_calibration_tokens(std::shared_ptr<const Model> model, int sequences, int length,
                                               uint64_t seed, int threads,
                                               const std::function<void(int64_t, int64_t)>& progress) {
  ELM_CHECK(sequences >= 1 && length >= 2, "calibration samples need at least one sequence of 2 tokens");
  const ModelInfo& info = model->info;
  const int32_t start = info.bos_token_id >= 0 ? info.bos_token_id : !info.eos_token_ids.empty() ? info.eos_token_ids[0] : 0;
  RuntimeConfig config;
  config.max_seqs = sequences;
  config.n_ctx = length;
  config.max_batch = sequences;
  config.threads = threads;
  Executor ex(model, config, std::vector<std::string>{"cpu"});
  SamplerConfig sc;
  sc.temperature = 1.0f, sc.top_k = 0, sc.top_p = 1.0f, sc.min_p = 0.0f;
  std::vector<Sampler> samplers;
  for (int s = 0; s < sequences; ++s) {
    sc.seed = seed + uint64_t(s);
    samplers.emplace_back(sc);
  }
  std::vector<std::vector<int32_t>> seqs(size_t(sequences), std::vector<int32_t>{start});
  Batch b;
  for (int pos = 0; pos + 1 < length; ++pos) {
    b.clear();
    for (int s = 0; s < sequences; ++s) b.add(seqs[size_t(s)].back(), pos, s, true);
    const HostTensor& logits = ex.step(b);
    for (int s = 0; s < sequences; ++s)
      seqs[size_t(s)].push_back(samplers[size_t(s)].sample(std::span<const float>(logits.row(s), size_t(logits.cols))));
    if (progress) progress(int64_t(pos + 2) * sequences, int64_t(length) * sequences);
  }
  std::vector<int32_t> out;
  for (const auto& q : seqs) out.insert(out.end(), q.begin(), q.end());
  return out;
}

ActivationStats collect_activation_stats(std::shared_ptr<const Model> model, const std::vector<int32_t>& tokens,
                                         const CalibrationOptions& o) {
  ELM_CHECK(tokens.size() >= 2, "the calibration text is too short (", tokens.size(), " tokens)");
  ELM_CHECK(o.ctx >= 2, "calibration chunks need at least 2 tokens");
  RuntimeConfig config;
  config.n_ctx = o.ctx;
  config.max_batch = o.ctx;
  config.threads = o.threads;
  ThreadPool pool(o.threads);
  Accumulators acc;
  acc.max_gptq_cols = o.max_gptq_cols;
  acc.gptq_budget_bytes = o.gptq_budget_bytes;
  acc.pool = &pool;
  std::vector<std::unique_ptr<Backend>> backends;
  backends.push_back(std::make_unique<ProbeBackend>(config, acc));
  backends.push_back(make_cpu_backend(config));
  Executor ex(model, config, std::move(backends));

  const int64_t total = std::min<int64_t>(int64_t(tokens.size()), o.max_tokens);
  ActivationStats stats;
  for (int64_t start = 0; start < total; start += o.ctx) {
    const int64_t n = std::min<int64_t>(o.ctx, total - start);
    if (n < 2) break;
    Batch b;
    for (int64_t t = 0; t < n; ++t) b.add(t == 0 && o.bos >= 0 ? o.bos : tokens[size_t(start + t)], int32_t(t), 0, true);
    ex.step(b);
    ex.seq_reset(0);
    stats.tokens += n;
    if (o.progress) o.progress(start + n, total);
  }

  std::map<int32_t, std::shared_ptr<const std::vector<float>>> moments;  // by input node
  for (auto& [node, s] : acc.inputs) {
    if (s.sum_outer.empty() || s.rows == 0) continue;
    const int64_t K = s.cols;
    auto m = std::make_shared<std::vector<float>>(size_t(K * K));
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = i; j < K; ++j)
        (*m)[size_t(i * K + j)] = (*m)[size_t(j * K + i)] = float(s.sum_outer[size_t(i * K + j)] / double(s.rows));
    moments[node] = std::move(m);
    std::vector<double>().swap(s.sum_outer);
  }
  for (const auto& [name, nodes] : acc.readers) {
    // A weight multiplied by several inputs gets their pooled mean squares, and no second moment.
    std::vector<double> sum;
    int64_t rows = 0;
    for (int32_t node : nodes) {
      const InputSums& s = acc.inputs.at(node);
      sum.resize(s.sum_sq.size(), 0.0);
      for (size_t k = 0; k < sum.size(); ++k) sum[k] += s.sum_sq[k];
      rows += s.rows;
    }
    std::vector<float>& ms = stats.mean_square[name];
    ms.resize(sum.size());
    for (size_t k = 0; k < ms.size(); ++k) ms[k] = rows ? float(sum[k] / double(rows)) : 0.f;
    if (nodes.size() == 1 && moments.count(nodes[0])) stats.second_moment[name] = moments[nodes[0]];
  }
  return stats;
}

}  // namespace elm
