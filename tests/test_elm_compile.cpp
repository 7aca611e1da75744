// elm compile: a partial test backend (matmul and elementwise ops only, weights pre-converted to f32 in
// its artifact) compiled into a .elm file. Partitioning plus CPU fallback must give the logits of the
// CPU alone; the stored plan and artifacts are used when the backend list matches, and everything falls
// back cleanly when it does not or when the backend rejects its artifact.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "elm_test_util.h"
#include "fixture_check.h"
#include "format/elm_compile.h"
#include "format/elm_file.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

constexpr char kMagic[4] = {'P', 'A', 'R', 'T'};
std::atomic<int> g_prepared_with_artifact{0}, g_prepared_without{0};

// Artifact: "PART", u32 count, then per matmul node: u32 node id, u32 rows, u32 cols, rows*cols floats.
class PartialSegment : public Segment {
 public:
  PartialSegment(const SegmentSpec& s) : s_(s) {
    const Graph& g = *s.graph;
    if (!s.artifact.empty()) {
      ++g_prepared_with_artifact;
      const uint8_t* p = s.artifact.data() + 8;
      uint32_t n;
      std::memcpy(&n, s.artifact.data() + 4, 4);
      for (uint32_t i = 0; i < n; ++i) {
        uint32_t hdr[3];
        std::memcpy(hdr, p, 12);
        p += 12;
        std::vector<float>& w = weights_[int32_t(hdr[0])];
        w.resize(size_t(hdr[1]) * hdr[2]);
        std::memcpy(w.data(), p, w.size() * 4);
        p += w.size() * 4;
      }
    } else {
      ++g_prepared_without;
      for (int32_t n : s.nodes)
        if (g.nodes[size_t(n)].op == Op::MatMul)
          weights_[n] = to_f32(s.weights->get(g.nodes[size_t(g.nodes[size_t(n)].inputs[1])].name));
    }
    for (int32_t n : s.nodes)
      ELM_CHECK(g.nodes[size_t(n)].op != Op::MatMul || weights_.count(n), "partial: artifact lacks node ", n);
  }

  void run(const Batch& b, BoundaryValues& io) override {
    const Graph& g = *s_.graph;
    std::map<int32_t, HostTensor> v;
    auto in = [&](int32_t id) -> const HostTensor& { return v.count(id) ? v.at(id) : io.at(id); };
    for (int32_t id : s_.nodes) {
      const Node& n = g.nodes[size_t(id)];
      const HostTensor& x = in(n.inputs[0]);
      HostTensor& y = v[id];
      y.resize(x.rows, n.cols);
      if (n.op == Op::MatMul) {
        const std::vector<float>& w = weights_.at(id);
        for (int64_t r = 0; r < x.rows; ++r)
          for (int64_t o = 0; o < n.cols; ++o) {
            double acc = 0;
            for (int64_t k = 0; k < x.cols; ++k) acc += double(x.row(r)[k]) * w[size_t(o * x.cols + k)];
            y.data[size_t(r * n.cols + o)] = float(acc);
          }
      } else if (n.op == Op::Silu) {
        for (size_t i = 0; i < y.data.size(); ++i) y.data[i] = x.data[i] / (1.f + std::exp(-x.data[i]));
      } else {
        const HostTensor& z = in(n.inputs[1]);
        for (size_t i = 0; i < y.data.size(); ++i) y.data[i] = n.op == Op::Add ? x.data[i] + z.data[i] : x.data[i] * z.data[i];
      }
    }
    for (int32_t o : s_.outputs) io[o] = v.at(o);
    (void)b;
  }
  void seq_reset(int) override {}
  void seq_truncate(int, int32_t) override {}

 private:
  SegmentSpec s_;
  std::map<int32_t, std::vector<float>> weights_;
};

class PartialBackend : public Backend {
 public:
  std::string name() const override { return "partial"; }
  bool supports(const Graph& g, const WeightStore&, int32_t id) const override {
    const Node& n = g.nodes[size_t(id)];
    auto activation = [&](int32_t i) { return g.nodes[size_t(i)].rows < 0; };
    switch (n.op) {
      case Op::MatMul: return n.inputs.size() == 2;
      case Op::Silu: return true;
      case Op::Add:
      case Op::Mul: return activation(n.inputs[1]) && g.nodes[size_t(n.inputs[1])].rows == n.rows;
      default: return false;
    }
  }
  std::unique_ptr<Segment> prepare(const SegmentSpec& spec) override { return std::make_unique<PartialSegment>(spec); }
  std::vector<uint8_t> compile(const SegmentSpec& s) override {
    std::vector<uint8_t> out(kMagic, kMagic + 4);
    uint32_t count = 0;
    out.resize(8);
    for (int32_t id : s.nodes) {
      const Node& n = s.graph->nodes[size_t(id)];
      if (n.op != Op::MatMul) continue;
      const TensorView& t = s.weights->get(s.graph->nodes[size_t(n.inputs[1])].name);
      const std::vector<float> w = to_f32(t);
      const uint32_t hdr[3] = {uint32_t(id), uint32_t(t.rows()), uint32_t(t.cols())};
      const auto* h = reinterpret_cast<const uint8_t*>(hdr);
      out.insert(out.end(), h, h + 12);
      const auto* f = reinterpret_cast<const uint8_t*>(w.data());
      out.insert(out.end(), f, f + w.size() * 4);
      ++count;
    }
    std::memcpy(out.data() + 4, &count, 4);
    return out;
  }
  bool accepts_artifact(std::span<const uint8_t> a) const override {
    return a.size() >= 8 && std::memcmp(a.data(), kMagic, 4) == 0;
  }
};

std::vector<std::unique_ptr<Backend>> partial_and_cpu() {
  std::vector<std::unique_ptr<Backend>> b;
  b.push_back(std::make_unique<PartialBackend>());
  b.push_back(make_backend("cpu", {}));
  return b;
}

double max_rel(const std::vector<float>& a, const std::vector<float>& b) { return rel_max_err(a.data(), b.data(), a.size()); }

class Compile : public testing::Test {
 protected:
  void SetUp() override {
    if (!have_shared("fixtures/tiny/llama")) GTEST_SKIP() << "fixtures missing";
    register_backend("partial", [](const RuntimeConfig&) { return std::make_unique<PartialBackend>(); });
    plain_ = convert_to_temp(shared("fixtures/tiny/llama"), "compile-plain", "int8");
    ref_ = load_fixture_ref(shared("fixtures/tiny/llama"));
  }
  std::string plain_;
  FixtureRef ref_;
};

}  // namespace

TEST_F(Compile, PartitionWithCpuFallbackMatchesCpuAlone) {
  const std::string compiled = temp_dir() + "/compiled.elm";
  const CompileResult r = compile_elm(plain_, compiled, partial_and_cpu());
  EXPECT_EQ(r.backends, (std::vector<std::string>{"partial", "cpu"}));
  EXPECT_GT(r.segments, 4u);
  size_t with_artifact = 0;
  for (size_t n : r.artifact_bytes) with_artifact += n > 0;
  EXPECT_GT(with_artifact, 0u);

  auto plain = Model::load(plain_);
  auto model = Model::load(compiled);
  ASSERT_EQ(model->compiled.size(), 1u);
  EXPECT_EQ(model->compiled[0].backends, r.backends);
  // The partial backend multiplies in float, so the CPU side uses its exact matmul path too.
  SessionOptions exact;
  exact.runtime.exact_matmul = true;
  const std::vector<float> cpu = model_logits(plain, ref_.ids, 0, exact);

  SessionOptions o = exact;
  o.backends = {"partial"};
  {
    Session s(model, o);
    EXPECT_TRUE(s.executor().used_compiled_plan());
  }
  const int before = g_prepared_with_artifact;
  const std::vector<float> split = model_logits(model, ref_.ids, 0, o);
  EXPECT_GT(g_prepared_with_artifact - before, 0) << "the stored artifacts were not used";
  EXPECT_LT(max_rel(split, cpu), 1e-5);
  EXPECT_LT(max_rel(model_logits(model, ref_.ids, ref_.prompt_len, o), cpu), 1e-5) << "stepwise";

  // Without a matching plan: partitioned afresh (no artifacts), or CPU only.
  auto fresh = Model::load(plain_);
  const int without = g_prepared_without;
  EXPECT_LT(max_rel(model_logits(fresh, ref_.ids, 0, o), cpu), 1e-5);
  EXPECT_GT(g_prepared_without - without, 0);
  SessionOptions cpu_only;
  Session s(model, cpu_only);
  EXPECT_FALSE(s.executor().used_compiled_plan());
}

TEST_F(Compile, RejectedArtifactsFallBackToPreparingWithoutThem) {
  const std::string compiled = temp_dir() + "/compiled-reject.elm";
  compile_elm(plain_, compiled, partial_and_cpu());
  // Break the magic of every artifact (the loader maps artifacts without reading them).
  std::string bytes = read_text_file(compiled);
  ElmFile f = ElmFile::open(compiled);
  for (size_t i = 0; i < f.sections.size(); ++i)
    if (f.sections[i].kind == uint32_t(SectionKind::Artifact)) bytes[f.sections[i].offset] = 'X';
  std::ofstream(compiled, std::ios::binary | std::ios::trunc) << bytes;

  auto model = Model::load(compiled);
  SessionOptions o;
  o.runtime.exact_matmul = true;  // the partial backend multiplies in float
  const std::vector<float> cpu = model_logits(Model::load(plain_), ref_.ids, 0, o);
  o.backends = {"partial"};
  const int with = g_prepared_with_artifact;
  const std::vector<float> logits = model_logits(model, ref_.ids, 0, o);
  EXPECT_EQ(g_prepared_with_artifact, with);
  EXPECT_LT(max_rel(logits, cpu), 1e-5);
}

TEST_F(Compile, RecompilingReplacesThePlanAndOtherPlansStay) {
  const std::string path = temp_dir() + "/recompile.elm";
  compile_elm(plain_, path, partial_and_cpu());
  compile_elm(path, path, partial_and_cpu());  // in place
  EXPECT_EQ(Model::load(path)->compiled.size(), 1u);
  compile_elm(path, path, std::vector<std::string>{"cpu"});
  auto m = Model::load(path);
  ASSERT_EQ(m->compiled.size(), 2u);
  EXPECT_EQ(m->compiled[0].backends, (std::vector<std::string>{"partial", "cpu"}));
  EXPECT_EQ(m->compiled[1].backends, std::vector<std::string>{"cpu"});
  const FixtureErrors e = fixture_errors(m, ref_);  // the CPU plan: one segment, no artifact
  EXPECT_LT(e.prefill, 0.05);  // int8 weights times int8 activation blocks on a tiny random model
  // The partial plan still carries its artifacts.
  size_t n = 0;
  for (const auto& a : m->compiled[0].artifacts) n += !a.empty();
  EXPECT_GT(n, 0u);
}

TEST_F(Compile, DamagedPlansGetClearErrors) {
  const std::string path = temp_dir() + "/plan-damage.elm";
  compile_elm(plain_, path, partial_and_cpu());
  const ElmFile f = ElmFile::open(path);
  const int p = f.find(SectionKind::CompiledPlan);
  ASSERT_GE(p, 0);
  const nlohmann::json plan = nlohmann::json::parse(f.text(size_t(p)));
  // The same file with the plan replaced by an edited one; returns the load error.
  auto forge = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = plan;
    edit(j);
    const std::string out = temp_dir() + "/plan-damaged.elm";
    {
      ElmWriter w(out);
      for (size_t i = 0; i < f.sections.size(); ++i)
        if (int(i) == p) w.add_text(SectionKind::CompiledPlan, j.dump());
        else w.copy_section(f.sections[i], f.bytes(i));
      w.finish();
    }
    try {
      load_elm(out);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(forge([](nlohmann::json&) {}), "");
  const size_t first_compute = size_t(std::find_if(plan["node_backend"].begin(), plan["node_backend"].end(),
                                                   [](const nlohmann::json& v) { return v != -1; }) -
                                      plan["node_backend"].begin());
  std::string e = forge([&](nlohmann::json& j) { j["node_backend"][first_compute] = 5; });
  EXPECT_NE(e.find("unknown backend 5"), std::string::npos) << e;
  e = forge([](nlohmann::json& j) { j["node_backend"].erase(j["node_backend"].size() - 1); });
  EXPECT_NE(e.find("compiled plan"), std::string::npos) << e;
  e = forge([](nlohmann::json& j) { j["artifacts"].push_back(-1); });
  EXPECT_NE(e.find("segments"), std::string::npos) << e;
  e = forge([](nlohmann::json& j) {
    for (auto& a : j["artifacts"])
      if (a != -1) a = 0;  // the meta section
  });
  EXPECT_NE(e.find("is not an artifact section"), std::string::npos) << e;
  e = forge([](nlohmann::json& j) { j.erase("backends"); });
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  e = forge([](nlohmann::json& j) { j["backends"] = "cpu"; });
  EXPECT_NE(e.find("compiled plan"), std::string::npos) << e;
}

// The command line: elm compile stores a plan, elm run picks it up without being told, elm inspect
// lists it.
TEST_F(Compile, CommandLineCompileRunInspect) {
  const std::string path = temp_dir() + "/cli-compiled.elm";
  auto sh = [](const std::string& args) {
    const CliResult r = run_elm(args);
    EXPECT_EQ(r.status, 0) << args << ": " << r.output;
    return r.output;
  };
  sh("compile " + plain_ + " --backends cpu -o " + path);
  EXPECT_NE(sh("run -m " + path + " --prompt-ids 1,2,3 -n 2 -v").find("using the compiled plan"), std::string::npos);
  EXPECT_EQ(sh("run -m " + plain_ + " --prompt-ids 1,2,3 -n 2 -v").find("using the compiled plan"), std::string::npos);
  EXPECT_NE(sh("inspect " + path).find("[cpu]: 1 segments"), std::string::npos);
}
