// The HTTP server in-process on a loopback port: bad input of every kind gets a 4xx in OpenAI's error
// shape while the server keeps serving, streamed and whole responses agree, a client that hangs up
// frees its slot, and the model management endpoints do what they say.
#include <algorithm>
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "server/http_server.h"
#include "server_fixtures.h"
#include "util.h"

using namespace elm;
using namespace elm::server;
using namespace elm::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A models directory with stories260k twice (two ids, two independent loads), served on a free port.
class ServerHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_shared("models/stories260k/reference_greedy.json")) GTEST_SKIP() << "missing stories260k";
    dir_ = fs::path(temp_dir()) / ("models-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::create_directory_symlink(fs::absolute(shared("models/stories260k/hf")), dir_ / "stories");
    fs::create_directory_symlink(fs::absolute(shared("models/stories260k/hf")), dir_ / "stories-b");
    std::ofstream(dir_ / "notes.txt") << "not a model";
    ServeConfig c;
    c.models_dir = dir_.string();
    c.parallel = 2;
    c.threads = 2;
    c.load_model = [](const std::string& path) {  // any format, with the predictable tokenizer
      auto m = Model::load(path);
      m->tokenizer = std::make_shared<CharTokenizer>();
      return m;
    };
    models_ = std::make_unique<ModelManager>(c);
    tasks_ = std::make_unique<ConvertTasks>(c.models_dir, elm_converter());
    HttpOptions h;
    h.port = 0;
    h.max_body = 1 << 20;
    http_ = std::make_unique<HttpServer>(*models_, *tasks_, h);
    port_ = http_->bind();
    thread_ = std::thread([this] { http_->run(); });
  }
  void TearDown() override {
    if (http_) http_->stop();
    if (thread_.joinable()) thread_.join();
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30);
    return c;
  }
  // (status, parsed body)
  std::pair<int, json> post(const std::string& path, const std::string& body) const {
    auto r = client().Post(path.c_str(), body, "application/json");
    if (!r) return {0, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  std::pair<int, json> get(const std::string& path) const {
    auto r = client().Get(path.c_str());
    if (!r) return {0, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  // The data events of an SSE body, [DONE] included.
  static std::vector<std::string> sse_data(const std::string& body) {
    std::vector<std::string> out;
    size_t at = 0;
    while ((at = body.find("data: ", at)) != std::string::npos) {
      const size_t end = body.find("\n\n", at);
      out.push_back(body.substr(at + 6, end - at - 6));
      at = end;
    }
    return out;
  }

  fs::path dir_;
  std::unique_ptr<ModelManager> models_;
  std::unique_ptr<ConvertTasks> tasks_;
  std::unique_ptr<HttpServer> http_;
  std::thread thread_;
  int port_ = 0;
};

std::string ids_prompt(size_t n) {
  json ids = json::array();
  for (size_t i = 0; i < n; ++i) ids.push_back(i == 0 ? 1 : 300);
  return ids.dump();
}

}  // namespace

TEST_F(ServerHttp, BadInputGets4xxAndTheServerKeepsServing) {
  struct Case {
    const char* path;
    std::string body;
    int status;
    const char* param;  // "" when none is expected
  };
  const std::string user = R"("messages": [{"role": "user", "content": "hi"}])";
  const std::vector<Case> cases = {
      {"/v1/chat/completions", "{\"messages\": [", 400, ""},
      {"/v1/chat/completions", "[]", 400, ""},
      {"/v1/chat/completions", R"({"messages": []})", 400, "messages"},
      {"/v1/chat/completions", R"({"messages": "hi"})", 400, "messages"},
      {"/v1/chat/completions", "{" + user + R"(, "temperature": "warm"})", 400, "temperature"},
      {"/v1/chat/completions", "{" + user + R"(, "max_tokens": -5})", 400, "max_tokens"},
      {"/v1/chat/completions", "{" + user + R"(, "model": "no-such-model"})", 404, "model"},
      {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"\xFF\xFE\"}]}", 400, ""},
      {"/v1/completions", R"({"model": "stories", "prompt": )" + ids_prompt(600) + "}", 400, "messages"},
      {"/v1/completions", R"({"model": "stories", "prompt": [1, 99999]})", 400, "prompt"},
      {"/api/models/load", R"({"model": "notes.txt"})", 404, "model"},
      {"/api/models/unload", R"({"model": "stories-b"})", 409, "model"},
      {"/api/models/load", R"({})", 400, "model"},
  };
  for (const Case& c : cases) {
    auto [status, body] = post(c.path, c.body);
    EXPECT_EQ(status, c.status) << c.path << " " << c.body.substr(0, 80);
    ASSERT_TRUE(body.is_object() && body.contains("error")) << body.dump();
    const json& e = body["error"];
    EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty());
    EXPECT_TRUE(e["type"].is_string());
    if (*c.param) {
      EXPECT_EQ(e["param"], c.param) << e.dump();
    }
    EXPECT_EQ(get("/health").first, 200);
  }
  auto [too_long_status, too_long] = post("/v1/completions", R"({"model": "stories", "prompt": )" + ids_prompt(600) + "}");
  EXPECT_EQ(too_long["error"]["code"], "context_length_exceeded");
  // Over the 1 MiB body limit.
  auto big = post("/v1/chat/completions", "{" + user + ", \"pad\": \"" + std::string(2 << 20, 'a') + "\"}");
  EXPECT_EQ(big.first, 413);
  EXPECT_TRUE(big.second.contains("error"));
  // Unknown routes.
  EXPECT_EQ(get("/v2/nothing").first, 404);
  EXPECT_TRUE(get("/v2/nothing").second.contains("error"));
  // And still serving.
  auto [ok, reply] = post("/v1/chat/completions", "{" + user + R"(, "max_tokens": 4})");
  EXPECT_EQ(ok, 200) << reply.dump();
  EXPECT_EQ(reply["usage"]["completion_tokens"], 4);
}

TEST_F(ServerHttp, CompletionWithTokenIdsFollowsTheGreedyReference) {
  const StoriesReference ref = stories_reference();
  auto [status, r] = post("/v1/completions", R"({"model": "stories", "prompt": [1], "max_tokens": 25, "temperature": 0})");
  ASSERT_EQ(status, 200) << r.dump();
  std::string expected;
  for (size_t i = 0; i < 25; ++i) expected += CharTokenizer::char_of(ref.greedy[i]);
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["choices"][0]["text"], expected);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["prompt_tokens"], 1);
  EXPECT_EQ(r["usage"]["completion_tokens"], 25);
  EXPECT_EQ(r["usage"]["total_tokens"], 26);
  EXPECT_GT(r["timings"]["tokens_per_s"].get<double>(), 0);
  EXPECT_GT(r["timings"]["ttft_ms"].get<double>(), 0);
}

TEST_F(ServerHttp, StreamedChatEqualsTheWholeResponse) {
  const std::string req = R"({"model": "stories", "messages": [{"role": "system", "content": "Tell a story."},
      {"role": "user", "content": "Once"}], "max_tokens": 30, "seed": 7, "temperature": 0.9)";
  auto [status, whole] = post("/v1/chat/completions", req + "}");
  ASSERT_EQ(status, 200) << whole.dump();
  EXPECT_EQ(whole["object"], "chat.completion");
  EXPECT_EQ(whole["model"], "stories");
  EXPECT_EQ(whole["choices"][0]["message"]["role"], "assistant");
  const std::string text = whole["choices"][0]["message"]["content"];

  auto res = client().Post("/v1/chat/completions", req + R"(, "stream": true, "stream_options": {"include_usage": true}})",
                           "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  const auto events = sse_data(res->body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string streamed;
  json finish, usage;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json e = json::parse(events[i]);
    EXPECT_EQ(e["object"], "chat.completion.chunk");
    EXPECT_EQ(e["id"], json::parse(events[0])["id"]);  // one id for the whole stream
    if (i == 0) {
      EXPECT_EQ(e["choices"][0]["delta"]["role"], "assistant");
    }
    if (e["choices"].empty()) {
      usage = e["usage"];
      continue;
    }
    const json& c = e["choices"][0];
    if (c["delta"].contains("content")) streamed += c["delta"]["content"].get<std::string>();
    if (!c["finish_reason"].is_null()) finish = e;
  }
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(finish["choices"][0]["finish_reason"], whole["choices"][0]["finish_reason"]);
  EXPECT_TRUE(finish.contains("timings"));
  EXPECT_EQ(usage, whole["usage"]);
}

TEST_F(ServerHttp, ClientThatHangsUpFreesItsSlot) {
  // A stream that would run to the end of the 512-token context; the client leaves after the first
  // piece of text.
  httplib::Client c = client();
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = R"({"model": "stories", "prompt": [1], "max_tokens": 100000, "temperature": 0, "stream": true})";
  req.set_header("Content-Type", "application/json");
  std::string got;
  req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
    got.append(d, n);
    size_t events = 0;
    for (size_t at = got.find("data: "); at != std::string::npos; at = got.find("data: ", at + 1)) ++events;
    return events < 3;  // the role chunk and two pieces of text
  };
  httplib::Response res;
  httplib::Error err;
  c.send(req, res, err);  // ends with Error::Canceled when the receiver says stop
  const auto sched = models_->get("stories");
  for (int i = 0; i < 200 && sched->stats().active > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(sched->stats().active, 0);
  EXPECT_LT(sched->stats().tokens_generated, 400u);  // cancelled, not run to the end of the context
}

TEST_F(ServerHttp, ModelManagement) {
  auto [s0, list0] = get("/api/models");
  ASSERT_EQ(s0, 200);
  ASSERT_EQ(list0["models"].size(), 2u);  // notes.txt is not a model
  EXPECT_EQ(list0["models"][0]["id"], "stories");
  EXPECT_EQ(list0["models"][1]["id"], "stories-b");
  EXPECT_EQ(list0["models"][1]["state"], "unloaded");

  auto [s1, loaded] = post("/api/models/load", R"({"model": "stories-b"})");
  EXPECT_EQ(s1, 200) << loaded.dump();
  auto [s2, list1] = get("/api/models");
  EXPECT_EQ(list1["models"][1]["state"], "loaded");
  EXPECT_EQ(list1["models"][1]["context_length"], 512);
  EXPECT_EQ(list1["models"][1]["slots"], 2);

  auto [s3, v1] = get("/v1/models");
  EXPECT_EQ(v1["object"], "list");
  ASSERT_EQ(v1["data"].size(), 2u);
  EXPECT_EQ(v1["data"][0]["object"], "model");
  EXPECT_EQ(get("/v1/models/stories-b").first, 200);
  EXPECT_EQ(get("/v1/models/nothing").first, 404);

  EXPECT_EQ(post("/api/models/unload", R"({"model": "stories-b"})").first, 200);
  EXPECT_EQ(get("/api/models").second["models"][1]["state"], "unloaded");
  EXPECT_EQ(post("/api/models/unload", R"({"model": "stories-b"})").first, 409);

  EXPECT_EQ(get("/api/tasks/convert-9").first, 404);
}

TEST_F(ServerHttp, ConvertsACheckpointThatThenServesTheSameTokens) {
  EXPECT_EQ(post("/api/models/convert", R"({"model": "notes.txt"})").first, 404);
  EXPECT_EQ(post("/api/models/convert", R"({"model": "stories", "output": "../escape"})").first, 400);
  auto [status, task] = post("/api/models/convert", R"({"model": "stories", "quant": "f32"})");
  ASSERT_EQ(status, 202) << task.dump();
  EXPECT_EQ(task["output"], "stories-f32.elm");
  json t;
  for (int i = 0; i < 600; ++i) {
    t = get("/api/tasks/" + task["id"].get<std::string>()).second;
    if (t["state"] != "running") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(t["state"], "done") << t.dump();
  EXPECT_EQ(t["progress"], 1.0);
  EXPECT_EQ(post("/api/models/convert", R"({"model": "stories", "quant": "f32"})").first, 409);  // exists
  const json list = get("/api/models").second["models"];
  ASSERT_EQ(list.size(), 3u);
  const auto converted = std::find_if(list.begin(), list.end(), [](const json& m) { return m["id"] == "stories-f32.elm"; });
  ASSERT_NE(converted, list.end()) << list.dump();
  EXPECT_EQ((*converted)["format"], "elm");
  // float32 keeps the weights exactly: the converted model continues greedily like the checkpoint.
  const std::string req = R"({"prompt": [1], "max_tokens": 20, "temperature": 0, "model": ")";
  const json a = post("/v1/completions", req + "stories\"}").second;
  const json b = post("/v1/completions", req + "stories-f32.elm\"}").second;
  ASSERT_TRUE(b.contains("choices")) << b.dump();
  EXPECT_EQ(a["choices"][0]["text"], b["choices"][0]["text"]);
}

TEST_F(ServerHttp, ServesTheWebGui) {
  auto r = client().Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(r->body.find("<html"), std::string::npos);
}
