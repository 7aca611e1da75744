// Bad input gets a clear error, never a crash: damaged checkpoints, configs, prompts. Checked both through
// the library (the message) and through the elm command (non-zero exit, no signal).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "runtime/session.h"
#include "util.h"

using namespace elm;
using namespace elm::test;
namespace fs = std::filesystem;

namespace {

// A writable copy of the tiny llama fixture to damage.
std::string copy_fixture(const std::string& name) {
  const fs::path dst = fs::path(temp_dir()) / name;
  fs::remove_all(dst);
  fs::create_directories(dst);
  for (const char* f : {"config.json", "model.safetensors", "generation_config.json"})
    fs::copy_file(shared("fixtures/tiny/llama/") + f, dst / f);
  fs::permissions(dst / "config.json", fs::perms::owner_write, fs::perm_options::add);
  fs::permissions(dst / "model.safetensors", fs::perms::owner_write, fs::perm_options::add);
  return dst.string();
}

std::string load_error(const std::string& dir) {
  try {
    Model::load(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void edit_config(const std::string& dir, const std::function<void(nlohmann::json&)>& f) {
  nlohmann::json j = nlohmann::json::parse(read_text_file(dir + "/config.json"));
  f(j);
  std::ofstream(dir + "/config.json") << j.dump();
}

// Rewrites one tensor's header entry of a safetensors file.
void edit_safetensors_header(const std::string& path, const std::function<void(nlohmann::json&)>& f) {
  std::string bytes = read_text_file(path);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  nlohmann::json h = nlohmann::json::parse(bytes.substr(8, n));
  f(h);
  std::string hs = h.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');
  const uint64_t m = hs.size();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(&m), 8);
  out << hs << bytes.substr(8 + n);
}

void expect_clean_failure(const std::string& args, const std::string& needle) {
  CliResult r = run_elm(args);
  EXPECT_FALSE(r.signaled) << r.output;
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.output;
}

}  // namespace

class BadInput : public testing::Test {
 protected:
  void SetUp() override {
    if (!have_shared("fixtures/tiny/llama")) GTEST_SKIP() << "fixtures missing";
  }
};

TEST_F(BadInput, MissingDirectoryAndFiles) {
  EXPECT_NE(load_error("/nonexistent/model").find("does not exist"), std::string::npos);
  const std::string dir = copy_fixture("no-weights");
  fs::remove(dir + "/model.safetensors");
  EXPECT_NE(load_error(dir).find("no model.safetensors"), std::string::npos);
  fs::remove(dir + "/config.json");
  EXPECT_NE(load_error(dir).find("no config.json"), std::string::npos);
}

TEST_F(BadInput, TruncatedSafetensorsAtEveryRegion) {
  const std::string dir = copy_fixture("truncated");
  const std::string path = dir + "/model.safetensors";
  const std::string full = read_text_file(path);
  for (size_t len : {size_t(0), size_t(4), size_t(8), size_t(100), full.size() / 2, full.size() - 1}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(full.data(), std::streamsize(len));
    const std::string err = load_error(dir);
    EXPECT_NE(err.find("model.safetensors"), std::string::npos) << "len " << len << ": " << err;
    EXPECT_TRUE(err.find("truncated") != std::string::npos || err.find("too short") != std::string::npos ||
                err.find("does not fit") != std::string::npos || err.find("outside") != std::string::npos)
        << "len " << len << ": " << err;
  }
}

TEST_F(BadInput, CorruptSafetensorsHeader) {
  const std::string dir = copy_fixture("corrupt-header");
  const std::string path = dir + "/model.safetensors";
  const std::string full = read_text_file(path);
  std::string bad = full;
  bad[8] = '[';  // header no longer an object
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
  EXPECT_NE(load_error(dir).find("header is not a JSON object"), std::string::npos);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << full;
  edit_safetensors_header(path, [](nlohmann::json& h) {
    h["model.norm.weight"]["data_offsets"] = {0, 1u << 30};
  });
  EXPECT_NE(load_error(dir).find("outside"), std::string::npos);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << full;
  edit_safetensors_header(path, [](nlohmann::json& h) { h["model.norm.weight"]["dtype"] = "F8_E4M3"; });
  EXPECT_NE(load_error(dir).find("unsupported dtype F8_E4M3"), std::string::npos);
}

TEST_F(BadInput, TensorWithWrongShapeOrDtype) {
  const std::string dir = copy_fixture("wrong-shape");
  const std::string path = dir + "/model.safetensors";
  const std::string full = read_text_file(path);
  // Declares q_proj as [32, 128] (same byte count as [64, 64]): the builder names the tensor.
  edit_safetensors_header(path, [](nlohmann::json& h) {
    h["model.layers.0.self_attn.q_proj.weight"]["shape"] = {32, 128};
  });
  std::string err = load_error(dir);
  EXPECT_NE(err.find("model.layers.0.self_attn.q_proj.weight"), std::string::npos) << err;
  EXPECT_NE(err.find("expected [64, 64]"), std::string::npos) << err;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << full;
  edit_safetensors_header(path, [](nlohmann::json& h) {
    auto& e = h["model.layers.1.self_attn.o_proj.weight"];
    e["dtype"] = "I32";  // 2-byte bf16 data relabelled as 4-byte ints: sizes disagree
  });
  err = load_error(dir);
  EXPECT_NE(err.find("model.layers.1.self_attn.o_proj.weight"), std::string::npos) << err;
}

TEST_F(BadInput, UnknownModelTypeAndMalformedConfig) {
  const std::string dir = copy_fixture("bad-config");
  edit_config(dir, [](nlohmann::json& j) { j["model_type"] = "mamba_xl"; });
  std::string err = load_error(dir);
  EXPECT_NE(err.find("unsupported model_type 'mamba_xl'"), std::string::npos) << err;
  EXPECT_NE(err.find("llama"), std::string::npos) << "lists supported types: " << err;
  std::ofstream(dir + "/config.json") << "{\"model_type\": \"llama\", ";
  EXPECT_NE(load_error(dir).find("malformed JSON"), std::string::npos);
  std::ofstream(dir + "/config.json") << R"({"model_type": "llama", "hidden_size": "64"})";
  EXPECT_NE(load_error(dir).find("config.json"), std::string::npos);
  fs::copy_file(shared("fixtures/tiny/llama/config.json"), dir + "/config.json", fs::copy_options::overwrite_existing);
  edit_config(dir, [](nlohmann::json& j) { j["num_key_value_heads"] = 3; });
  EXPECT_NE(load_error(dir).find("multiple of num_key_value_heads"), std::string::npos);
}

TEST_F(BadInput, PromptLongerThanContext) {
  auto model = Model::load(shared("fixtures/tiny/llama"));
  SessionOptions o;
  o.runtime.n_ctx = 16;
  Session s(model, o);
  std::vector<int32_t> ids(17, 5);
  try {
    s.feed(0, ids);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context holds 16 tokens"), std::string::npos) << e.what();
  }
  // The session stays usable for input that fits.
  std::vector<int32_t> ok(16, 5);
  EXPECT_EQ(s.feed(0, ok).size(), 512u);
}

TEST_F(BadInput, CommandLineFailsCleanly) {
  const std::string fx = shared("fixtures/tiny/llama");
  expect_clean_failure("run -m /nonexistent/model --prompt-ids 1,2", "does not exist");
  expect_clean_failure("run -m " + fx + " --prompt-ids 1,2,3 -c 2 -n 4", "context holds 2 tokens");
  expect_clean_failure("run -m " + fx + " --prompt-ids 1,99999", "outside the vocabulary");
  expect_clean_failure("run -m " + fx + " --prompt-ids 1,x", "bad token id");
  const std::string dir = copy_fixture("cli-bad-config");
  std::ofstream(dir + "/config.json") << "not json";
  expect_clean_failure("run -m " + dir + " --prompt-ids 1", "malformed JSON");
  std::ofstream(dir + "/model.safetensors", std::ios::trunc) << "junk";
  expect_clean_failure("logits -m " + dir + " --ids 1 -o /dev/null", "error");
}

TEST_F(BadInput, SpeculativeOptionsFailCleanly) {
  ELM_REQUIRE_SHARED("models/ref-28m");
  const std::string target = shared("models/ref-28m"), other = shared("fixtures/tiny/llama");
  // A draft with another vocabulary, in every command that speculates (serve serves such a model
  // without speculation, saying why: tests/test_server_speculative.cpp).
  const std::string vocab = "its vocabulary has 512 tokens, the target's 49152";
  expect_clean_failure("run -m " + target + " -p hi -n 2 --draft " + other, vocab);
  expect_clean_failure("chat -m " + target + " --draft " + other + " < /dev/null", vocab);
  expect_clean_failure("run -m " + target + " -p hi -n 2 --draft /nonexistent/draft", "does not exist");
  expect_clean_failure("serve --models " + shared("models") + " --port 0 --draft /nonexistent/draft", "does not exist");
  expect_clean_failure("chat -m " + target + " --self-draft 'layers=0-9' < /dev/null", "layer 6 does not exist");
  expect_clean_failure("run -m " + target + " -p hi -n 2 --self-draft", "stores no self-draft");
}
