// .elm round trips: a checkpoint converted to .elm and run from the file gives the same logits as the
// checkpoint itself (bitwise when the weights keep their type), every supported fixture matches
// transformers from its .elm (the runtime runs the stored graph, no family code), quantized files stay
// close, and the file carries the tokenizer, chat template and metadata.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "elm_test_util.h"
#include "fixture_check.h"
#include "format/elm_file.h"
#include "format/safetensors.h"
#include "util.h"

using namespace elm;
using namespace elm::test;
namespace fs = std::filesystem;

namespace {

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

std::vector<int32_t> ids_of(const std::string& reference) {
  SafetensorsFile f = SafetensorsFile::open(reference);
  const TensorView& t = f.tensors().at("input_ids");
  const auto* p = static_cast<const int32_t*>(t.data);
  return {p, p + t.numel()};
}

}  // namespace

TEST(ElmRoundTrip, Stories260kF32IsBitwiseIdentical) {
  ELM_REQUIRE_SHARED("models/stories260k/hf/reference.safetensors");
  const std::string hf = shared("models/stories260k/hf");
  auto a = Model::load(hf);
  auto b = Model::load(convert_to_temp(hf, "stories-f32", "f32"));
  std::vector<int32_t> ids = ids_of(hf + "/reference.safetensors");
  ids.resize(128);
  SessionOptions o;
  o.runtime.n_ctx = 256;
  EXPECT_TRUE(bitwise_equal(model_logits(a, ids, 0, o), model_logits(b, ids, 0, o))) << "prefill";
  EXPECT_TRUE(bitwise_equal(model_logits(a, ids, 100, o), model_logits(b, ids, 100, o))) << "stepwise";
  EXPECT_EQ(b->info.vocab_size, 512);
  EXPECT_EQ(b->info.bos_token_id, 1);
  EXPECT_EQ(b->info.eos_token_ids, std::vector<int32_t>{2});
  EXPECT_EQ(b->info.family, "llama");
}

class ElmFixture : public testing::TestWithParam<std::string> {};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ElmFixture);

// bf16 checkpoints converted with --quant bf16: same weights, so the same logits bit for bit, and the
// stored graph alone reproduces transformers.
TEST_P(ElmFixture, Bf16MatchesCheckpointBitwiseAndTransformers) {
  const std::string dir = shared("fixtures/tiny/" + GetParam());
  auto hf = Model::load(dir);
  auto elm = Model::load(convert_to_temp(dir, "fixture-" + GetParam(), "bf16"));
  const FixtureRef ref = load_fixture_ref(dir);
  EXPECT_TRUE(bitwise_equal(model_logits(hf, ref.ids), model_logits(elm, ref.ids))) << "prefill";
  EXPECT_TRUE(bitwise_equal(model_logits(hf, ref.ids, ref.prompt_len), model_logits(elm, ref.ids, ref.prompt_len)))
      << "stepwise";
  const FixtureErrors e = fixture_errors(elm, ref);
  EXPECT_LT(e.prefill, 1e-4);
  EXPECT_LT(e.stepwise, 1e-4);
  EXPECT_EQ(elm->info.family, hf->info.family);
  EXPECT_EQ(elm->info.eos_token_ids, hf->info.eos_token_ids);
}

INSTANTIATE_TEST_SUITE_P(Supported, ElmFixture, testing::ValuesIn(supported_fixtures()),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

// Quantized files: the formats the policy asks for, and logits that stay close to transformers' on a
// trained model (stories260k; the random-weight fixtures are no measure of 4-bit quality).
TEST(ElmQuantized, Int8AndInt4StayClose) {
  ELM_REQUIRE_SHARED("models/stories260k/hf/reference.safetensors");
  const std::string hf = shared("models/stories260k/hf");
  SafetensorsFile ref = SafetensorsFile::open(hf + "/reference.safetensors");
  const std::vector<int32_t> ids = ids_of(hf + "/reference.safetensors");
  const std::vector<float> ref_logits = to_f32(ref.tensors().at("logits"));
  const size_t V = 512;
  ASSERT_EQ(ref_logits.size(), ids.size() * V);
  struct Case {
    const char* quant;
    DType matmul;
    double max_err, max_kl;
    int min_agree;  // of 256 positions
  };
  // Bounds from measured values (int8: 0.021 / 0.0009 / 253; int4 round-to-nearest: 0.32 / 0.18 / 185)
  // with headroom: a regression guard that better quantizers only move further inside.
  for (const Case& c : {Case{"int8", DType::Q8, 0.05, 0.004, 245}, Case{"int4", DType::Q4, 0.5, 0.3, 160}}) {
    const std::string path = convert_to_temp(hf, std::string("stories-") + c.quant, c.quant);
    const ElmFile f = ElmFile::open(path);
    for (const TensorEntry& t : f.tensors) {
      if (t.name.find("q_proj.weight") != std::string::npos || t.name.find("up_proj.weight") != std::string::npos) {
        EXPECT_EQ(t.view.dtype, c.matmul) << t.name;
        EXPECT_EQ(t.view.group, 32) << t.name;
      }
      if (t.view.shape.size() == 1) {
        EXPECT_EQ(t.view.dtype, DType::F32) << t.name;
      }
    }
    SessionOptions o;
    o.runtime.n_ctx = 256;
    const std::vector<float> logits = model_logits(Model::load(path), ids, 0, o);
    int agree = 0;
    double kl = 0;
    for (size_t t = 0; t < ids.size(); ++t) {
      const float* q = logits.data() + t * V;
      const float* p = ref_logits.data() + t * V;
      agree += std::max_element(q, q + V) - q == std::max_element(p, p + V) - p;
      const double mp = *std::max_element(p, p + V), mq = *std::max_element(q, q + V);
      double zp = 0, zq = 0;
      for (size_t v = 0; v < V; ++v) zp += std::exp(p[v] - mp), zq += std::exp(q[v] - mq);
      for (size_t v = 0; v < V; ++v) {
        const double lp = p[v] - mp - std::log(zp), lq = q[v] - mq - std::log(zq);
        kl += std::exp(lp) * (lp - lq);
      }
    }
    kl /= double(ids.size());
    const double err = rel_max_err(logits.data(), ref_logits.data(), logits.size());
    RecordProperty(std::string(c.quant) + "_mean_kl", std::to_string(kl));
    EXPECT_LT(err, c.max_err) << c.quant;
    EXPECT_LT(kl, c.max_kl) << c.quant;
    EXPECT_GE(agree, c.min_agree) << c.quant;
  }
}

TEST(ElmFile, WeightsAreUsedInPlaceFromTheMapping) {
  ELM_REQUIRE_SHARED("fixtures/tiny/qwen3");
  const std::string path = convert_to_temp(shared("fixtures/tiny/qwen3"), "inplace", "int4");
  const ElmFile f = ElmFile::open(path);
  auto m = model_from_elm(f);
  const uint8_t* lo = f.file->data();
  const uint8_t* hi = lo + f.file->size();
  ASSERT_FALSE(m->weights.all().empty());
  for (const auto& [name, v] : m->weights.all()) {
    const auto* p = static_cast<const uint8_t*>(v.data);
    EXPECT_TRUE(p >= lo && p + v.nbytes <= hi) << name << " is not inside the mapping";
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << name;
    if (is_quantized(v.dtype)) {
      EXPECT_EQ(v.quant().scales_offset % 64, 0u);
    }
  }
}

TEST(ElmFile, CarriesTokenizerChatTemplateAndLoadsWithoutExtension) {
  ELM_REQUIRE_SHARED("tokenizers/qwen3/tokenizer_config.json");
  const fs::path dir = fs::path(temp_dir()) / "with-tokenizer";
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors", "generation_config.json"})
    fs::copy_file(shared("fixtures/tiny/qwen3/") + f, dir / f);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(shared("tokenizers/qwen3/") + f, dir / f);
  const std::string tok = read_text_file((dir / "tokenizer.json").string());
  const std::string cfg = read_text_file((dir / "tokenizer_config.json").string());
  const std::string tmpl = nlohmann::json::parse(cfg)["chat_template"].get<std::string>();

  const std::string path = convert_to_temp(dir.string(), "with-tokenizer", "int8");
  ElmFile f = ElmFile::open(path);
  ASSERT_GE(f.find(SectionKind::TokenizerJson), 0);
  EXPECT_EQ(f.text(size_t(f.find(SectionKind::TokenizerJson))), tok);
  EXPECT_EQ(f.text(size_t(f.find(SectionKind::TokenizerConfig))), cfg);
  EXPECT_EQ(f.text(size_t(f.find(SectionKind::ChatTemplate))), tmpl);
  EXPECT_EQ(Model::load(path)->chat_template, tmpl);

  // chat_template.jinja (transformers 4.43+) takes precedence over tokenizer_config.json's.
  std::ofstream(dir / "chat_template.jinja") << "{{ 'jinja file' }}";
  const std::string path2 = convert_to_temp(dir.string(), "with-jinja", "int8");
  EXPECT_EQ(Model::load(path2)->chat_template, "{{ 'jinja file' }}");

  // The format is recognized by its magic, whatever the file is called.
  const std::string renamed = temp_dir() + "/model.bin";
  fs::copy_file(path, renamed, fs::copy_options::overwrite_existing);
  EXPECT_EQ(Model::load(renamed)->chat_template, tmpl);
}

TEST(ElmFile, ConvertRefusesToOverwriteItsInputAndLeavesNoFileOnFailure) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  const std::string out = temp_dir() + "/never.elm";
  EXPECT_THROW(convert_to_temp(shared("fixtures/tiny/llama"), "never", "int3"), Error);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}
