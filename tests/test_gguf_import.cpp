// GGUF import: llama.cpp's stories260K.gguf runs exactly like its Hugging Face copy; GGUF files of the
// tiny fixtures (written the way llama.cpp's converter writes them, see gguf_writer.h) match
// transformers; Q8_0 / Q4_0 / Q4_1 blocks arrive as the same numbers in elm's formats and survive
// conversion to .elm bit for bit; unsupported files get clear errors.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "elm_test_util.h"
#include "fixture_check.h"
#include "format/elm_file.h"
#include "format/gguf_import.h"
#include "format/safetensors.h"
#include "gguf_writer.h"
#include "runtime/generate.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

std::string fixture_gguf(const std::string& name, GgmlType type) {
  const std::string out = temp_dir() + "/" + name + "-" + ggml_type_name(uint32_t(type)) + ".gguf";
  hf_to_gguf(shared("fixtures/tiny/" + name), out, type);
  return out;
}

std::string gguf_load_error(const std::vector<uint8_t>& bytes) {
  const std::string path = temp_dir() + "/bad.gguf";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  try {
    Model::load(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(GgufImport, Stories260kMatchesItsHfCopyAndTheGreedyReference) {
  ELM_REQUIRE_SHARED("models/stories260k/stories260K.gguf");
  const std::string gguf = shared("models/stories260k/stories260K.gguf");
  auto g = Model::load(gguf);
  auto hf = Model::load(shared("models/stories260k/hf"));
  EXPECT_EQ(g->info.bos_token_id, 1);
  EXPECT_EQ(g->info.eos_token_ids, std::vector<int32_t>{2});

  // Same weights once the Q/K permutation is undone: the same logits, bit for bit.
  SafetensorsFile ref = SafetensorsFile::open(shared("models/stories260k/hf/reference.safetensors"));
  const auto* p = static_cast<const int32_t*>(ref.tensors().at("input_ids").data);
  std::vector<int32_t> ids(p, p + 96);
  EXPECT_TRUE(bitwise_equal(model_logits(g, ids), model_logits(hf, ids)));

  // Greedy decoding from BOS, from the GGUF and from its .elm conversion.
  std::ifstream rf(shared("models/stories260k/reference_greedy.json"));
  const nlohmann::json greedy = nlohmann::json::parse(rf);
  auto e = Model::load(convert_to_temp(gguf, "stories-gguf", ""));
  for (const auto& m : {g, e}) {
    Session s(m, {});
    GenerateOptions o;
    o.sampling.temperature = 0;
    o.max_tokens = int(greedy["greedy_ids"].size());
    o.stop_at_eos = false;
    GenerateResult r = generate(s, 0, greedy["prompt_ids"].get<std::vector<int32_t>>(), o);
    EXPECT_EQ(r.tokens, greedy["greedy_ids"].get<std::vector<int32_t>>());
  }
  // The vocabulary travels with the .elm file for the tokenizer to read.
  ElmFile f = ElmFile::open(convert_to_temp(gguf, "stories-gguf-vocab", "keep"));
  ASSERT_GE(f.find(SectionKind::TokenizerGguf), 0);
  const nlohmann::json vocab = nlohmann::json::parse(f.text(size_t(f.find(SectionKind::TokenizerGguf))));
  EXPECT_EQ(vocab["tokenizer.ggml.tokens"].size(), 512u);
  EXPECT_EQ(vocab["tokenizer.ggml.tokens"][1], "<s>");
  EXPECT_EQ(vocab["tokenizer.ggml.model"], "llama");
}

class GgufFixture : public testing::TestWithParam<std::string> {};

TEST_P(GgufFixture, F32GgufMatchesTransformers) {
  const std::string name = GetParam();
  ELM_REQUIRE_SHARED("fixtures/tiny/" + name);
  auto m = Model::load(fixture_gguf(name, GgmlType::F32));
  const FixtureRef ref = load_fixture_ref(shared("fixtures/tiny/" + name));
  const FixtureErrors e = fixture_errors(m, ref);
  EXPECT_LT(e.prefill, 1e-4);
  EXPECT_LT(e.stepwise, 1e-4);
  EXPECT_EQ(m->chat_template, "{{ messages }}");
}

INSTANTIATE_TEST_SUITE_P(Architectures, GgufFixture, testing::Values("llama", "llama3", "qwen2", "qwen3", "gemma3"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

// Q8_0 / Q4_0 / Q4_1 blocks become Q8 / Q4 / Q4M planes holding the same numbers (checked against the
// block decoder of the layout table, rows of Q and K included after un-permuting), and a .elm made
// with --quant keep runs bit for bit like the GGUF.
TEST(GgufImport, QuantizedBlocksMapLosslessly) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  const FixtureRef ref = load_fixture_ref(shared("fixtures/tiny/llama"));
  struct Case {
    GgmlType type;
    DType elm;
  };
  for (const Case& c : {Case{GgmlType::Q8_0, DType::Q8}, Case{GgmlType::Q4_0, DType::Q4}, Case{GgmlType::Q4_1, DType::Q4M}}) {
    SCOPED_TRACE(ggml_type_name(uint32_t(c.type)));
    const std::string path = fixture_gguf("llama", c.type);
    const GgufImport imp = GgufImport::open(path);
    auto m = imp.model(true);
    const int64_t D = 16;  // the fixture's head_dim
    for (const auto& [name, t] : imp.tensors) {
      if (t.desc.shape.size() != 2) continue;
      const TensorView& v = m->weights.get(name);
      ASSERT_EQ(v.dtype, c.elm) << name;
      ASSERT_EQ(v.group, 32);
      const GgufTensor& src = imp.gguf.tensors[size_t(t.src)];
      const bool q = name.find("q_proj") != std::string::npos, k = name.find("k_proj") != std::string::npos;
      std::vector<float> row(size_t(v.cols()));
      for (int64_t r = 0; r < v.rows(); ++r) {
        int64_t sr = r;  // the GGUF row holding HF row r
        if (q || k) {
          const int64_t h = r / D, w = r % D;
          sr = h * D + 2 * (w % (D / 2)) + w / (D / 2);
        }
        dequantize_row(v, r, row.data());
        const std::vector<float> expect = ggml_decode_row(c.type, src.data, sr, v.cols());
        for (size_t i = 0; i < row.size(); ++i)
          ASSERT_EQ(row[i], expect[i]) << name << " row " << r << " col " << i;
      }
    }
    // The same model stored as the F32 values its blocks decode to: the same logits up to summation
    const std::string decoded = temp_dir() + "/decoded.gguf";
    hf_to_gguf(shared("fixtures/tiny/llama"), decoded, c.type, /*decoded=*/true);
    // order (the CPU's exact path: float activations times the quantized weights).
    SessionOptions exact;
    exact.runtime.exact_matmul = true;
    const std::vector<float> expect = model_logits(Model::load(decoded), ref.ids);
    EXPECT_LT(rel_max_err(model_logits(m, ref.ids, 0, exact).data(), expect.data(), expect.size()), 1e-5);

    const std::string elm_path = convert_to_temp(path, std::string("llama-keep-") + ggml_type_name(uint32_t(c.type)), "keep");
    auto em = Model::load(elm_path);
    EXPECT_TRUE(bitwise_equal(model_logits(m, ref.ids), model_logits(em, ref.ids)));
    // The matching elm policy keeps the blocks as they are too (int8 = Q8 g32, int4 = Q4 g32).
    if (c.type != GgmlType::Q4_1) {
      const char* quant = c.type == GgmlType::Q8_0 ? "int8" : "int4-g32";
      auto pm = Model::load(convert_to_temp(path, std::string("llama-policy-") + quant, quant));
      const TensorView& a = pm->weights.get("model.layers.0.mlp.up_proj.weight");
      const TensorView& b = m->weights.get("model.layers.0.mlp.up_proj.weight");
      ASSERT_EQ(a.nbytes, b.nbytes);
      EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0);
    }
  }
}

TEST(GgufImport, MetadataOfEveryValueType) {
  GgufWriter w;
  auto put = [&](const std::string& k, uint32_t type, std::vector<uint8_t> v) { w.kv(k, type, v); };
  put("u8", 0, {200});
  put("i8", 1, {0xff});
  put("u16", 2, {0x34, 0x12});
  put("i16", 3, {0xfe, 0xff});
  w.u32("u32", 4000000000u);
  w.i32("i32", -7);
  w.f32("f32", 0.5f);
  w.boolean("bool", true);
  w.str("str", "h\xC3\xA9llo");
  put("u64", 10, {1, 0, 0, 0, 0, 0, 0, 1});
  put("i64", 11, {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  put("f64", 12, {0, 0, 0, 0, 0, 0, 0xf8, 0x3f});
  // array of 2 arrays of u8: [[1, 2], [3]]
  put("nested", 9, {9, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2,
                    0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3});
  const std::vector<uint8_t> b = w.bytes();
  const GgufFile g = GgufFile::parse(b.data(), b.size(), "mem");
  EXPECT_EQ(g.meta["u8"], 200);
  EXPECT_EQ(g.meta["i8"], -1);
  EXPECT_EQ(g.meta["u16"], 0x1234);
  EXPECT_EQ(g.meta["i16"], -2);
  EXPECT_EQ(g.meta["u32"], 4000000000u);
  EXPECT_EQ(g.meta["i32"], -7);
  EXPECT_EQ(g.meta["f32"], 0.5);
  EXPECT_EQ(g.meta["bool"], true);
  EXPECT_EQ(g.meta["str"], "h\xC3\xA9llo");
  EXPECT_EQ(g.meta["u64"], (uint64_t(1) << 56) + 1);
  EXPECT_EQ(g.meta["i64"], -2);
  EXPECT_EQ(g.meta["f64"], 1.5);
  EXPECT_EQ(g.meta["nested"], nlohmann::json::parse("[[1, 2], [3]]"));
}

TEST(GgufImport, UnsupportedFilesGetClearErrors) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  const std::string path = fixture_gguf("llama", GgmlType::F32);
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Architecture: "llama" -> "mamba" (same length, so the file stays consistent).
  std::vector<uint8_t> b = good;
  const std::string needle = "llama";
  auto it = std::search(b.begin(), b.end(), needle.begin(), needle.end());
  ASSERT_NE(it, b.end());
  std::memcpy(&*it, "mamba", 5);
  EXPECT_NE(gguf_load_error(b).find("GGUF architecture 'mamba' is not supported"), std::string::npos)
      << gguf_load_error(b);

  GgufWriter w;
  w.str("general.architecture", "llama");
  w.tensor("token_embd.weight", {4, 256}, GgmlType::IQ2_XXS, std::vector<uint8_t>(4 * 66));  // a type elm cannot decode
  std::string err = gguf_load_error(w.bytes());
  EXPECT_NE(err.find("IQ2_XXS"), std::string::npos) << err;
  EXPECT_NE(err.find("token_embd.weight"), std::string::npos) << err;

  GgufWriter u;
  u.str("general.architecture", "llama");
  u.tensor("blk.0.attn_mystery.weight", {4}, GgmlType::F32, std::vector<uint8_t>(16));
  err = gguf_load_error(u.bytes());
  EXPECT_NE(err.find("blk.0.attn_mystery.weight"), std::string::npos) << err;

  // Truncated anywhere: an error naming the file, never a crash.
  for (size_t len : {size_t(3), size_t(24), good.size() / 3, good.size() - 1}) {
    std::vector<uint8_t> t(good.begin(), good.begin() + long(len));
    err = gguf_load_error(t);
    EXPECT_NE(err.find("bad.gguf"), std::string::npos) << len << ": " << err;
  }
}
