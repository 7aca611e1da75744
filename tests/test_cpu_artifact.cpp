// `elm compile` for the CPU backend: the packed-weight artifact gives the same logits as the plain
// weights (prefill and decode) and as weights packed at load, is used in place, and damaged artifacts
// are refused with an Error.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_artifact.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "quant/quantize.h"
#include "runtime/session.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

// The artifacts compile() makes for every segment of the default CPU plan, as a CompiledPlan.
struct Compiled {
  std::vector<std::vector<uint8_t>> bytes;
  CompiledPlan plan;
};

Compiled compile_cpu(const std::shared_ptr<Model>& m) {
  RuntimeConfig cfg;
  auto backend = make_backend("cpu", cfg);
  PartitionPlan p = partition(m->graph, m->weights, {backend.get()});
  Compiled c;
  c.plan.backends = {"cpu"};
  c.plan.node_backend = p.node_backend;
  for (const auto& seg : p.segments) {
    SegmentSpec spec;
    spec.graph = &m->graph;
    spec.weights = &m->weights;
    spec.nodes = seg.nodes;
    spec.inputs = seg.inputs;
    spec.outputs = seg.outputs;
    spec.config = cfg;
    c.bytes.push_back(backend->compile(spec));
  }
  for (const auto& b : c.bytes) c.plan.artifacts.emplace_back(b.data(), b.size());
  return c;
}

// Logits of a prefill of `ids` and then of single-token steps over `more`.
// repack: RuntimeConfig::cpu_repack (pack weights the file has no packed copy of at load).
std::vector<float> run(const std::shared_ptr<const Model>& m, const std::vector<int32_t>& ids,
                       const std::vector<int32_t>& more, bool* used_compiled = nullptr, bool repack = true) {
  SessionOptions o;
  o.runtime.cpu_repack = repack;
  Session s(m, o);
  if (used_compiled) *used_compiled = s.executor().used_compiled_plan();
  std::vector<float> out = s.feed_all(0, ids);
  for (int32_t t : more) {
    std::span<const float> row = s.feed(0, std::span<const int32_t>(&t, 1));
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

}  // namespace

TEST(CpuArtifact, PackedWeightsGiveThePlainLogits) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  for (const char* quant : {"int8", "int4", "int4m-g64"}) {
    SCOPED_TRACE(quant);
    auto m = Model::load(shared("fixtures/tiny/llama"));
    quantize_weights(*m, QuantPolicy::parse(quant));
    const std::vector<int32_t> ids = {1, 5, 9, 200, 3, 77, 41, 8}, more = {13, 99, 250};
    const std::vector<float> plain = run(m, ids, more, nullptr, /*repack=*/false);
    const std::vector<float> packed_at_load = run(m, ids, more);

    Compiled c = compile_cpu(m);
    ASSERT_FALSE(c.bytes.empty());
    ASSERT_TRUE(cpu::is_artifact(c.plan.artifacts[0]));
    m->compiled.push_back(c.plan);
    bool used = false;
    const std::vector<float> packed = run(m, ids, more, &used);
    EXPECT_TRUE(used);
    // Prefill runs the same kernel on the same packed bytes; decode reads the plain layout with a
    // different kernel (another summation order).
    ASSERT_EQ(plain.size(), packed.size());
    EXPECT_LT(rel_max_err(packed.data(), plain.data(), plain.size()), 1e-5);
    // Packing at load makes the artifact's bytes, read by the same kernels.
    EXPECT_EQ(packed_at_load, packed);
  }
}

TEST(CpuArtifact, WeightsAreUsedInPlace) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  auto m = Model::load(shared("fixtures/tiny/llama"));
  quantize_weights(*m, QuantPolicy::parse("int8"));
  Compiled c = compile_cpu(m);
  const std::span<const uint8_t> a = c.plan.artifacts[0];
  const auto packed = cpu::read_artifact(a, m->weights);
  EXPECT_FALSE(packed.empty());
  for (const auto& [name, p] : packed) {
    EXPECT_GE(p.data, a.data()) << name;
    EXPECT_LE(p.data + cpu::packed_bytes(cpu::qmatrix(m->weights.get(name))), a.data() + a.size()) << name;
  }
}

TEST(CpuArtifact, DamagedArtifactsAreRefused) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  auto m = Model::load(shared("fixtures/tiny/llama"));
  quantize_weights(*m, QuantPolicy::parse("int4"));
  Compiled c = compile_cpu(m);
  const std::vector<uint8_t> good = c.bytes[0];
  auto refused = [&](std::vector<uint8_t> bad) {
    EXPECT_THROW(cpu::read_artifact(bad, m->weights), Error);
  };
  refused({});
  refused(std::vector<uint8_t>(good.begin(), good.begin() + 40));  // truncated directory
  std::vector<uint8_t> b = good;
  b[0] = 'X';  // magic
  refused(b);
  b = good;
  b[8] = 99;  // version
  refused(b);
  b = good;
  b[20] ^= 1;  // first name (after magic, version, count, length): a tensor the model lacks
  refused(b);
  b = good;
  b.resize(b.size() - 1);  // the last tensor runs past the end
  refused(b);
  // A model whose weights changed since compiling (another quantization) must not use it.
  auto other = Model::load(shared("fixtures/tiny/llama"));
  quantize_weights(*other, QuantPolicy::parse("int8"));
  EXPECT_THROW(cpu::read_artifact(good, other->weights), Error);
}
