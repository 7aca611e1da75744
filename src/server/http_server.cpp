#include "server/http_server.h"

#include <httplib.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "server/api_error.h"
#include "server/chat_prompt.h"
#include "server/openai_json.h"
#include "server/request.h"
#include "server/web_assets.h"

namespace elm::server {

using nlohmann::json;

namespace {

constexpr auto kStreamPoll = std::chrono::milliseconds(250);  // how often an idle stream checks its client

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(dump_json(j), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status(), error_json(e)); }

// Runs a handler, turning whatever it throws into an OpenAI error response.
template <class Fn>
void guarded(httplib::Response& res, Fn&& fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const Error& e) {
    send_error(res, ApiError(400, e.what()));  // elm::Error is bad input by convention
  } catch (const std::exception& e) {
    send_error(res, ApiError(500, cat("internal error: ", e.what())));
  }
}

std::string required_string(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_string() || it->get<std::string>().empty())
    throw ApiError(400, cat("'", key, "' must be a non-empty string"), key);
  return it->get<std::string>();
}

// The process's resident memory and the bytes malloc has handed out and not got back: the first can grow
// with fragmentation and thread stacks, the second only with what the program holds (a leak shows here).
json memory_json() {
  json m = json::object();
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) m["rss_bytes"] = std::stoll(line.substr(6)) * 1024;
#ifdef __GLIBC__
  const struct mallinfo2 mi = mallinfo2();
  m["heap_in_use_bytes"] = mi.uordblks + mi.hblkhd;  // small chunks in all arenas + mmapped blocks
#endif
  return m;
}

// What /v1/chat/completions and /v1/completions have in common once the body is parsed.
struct GenerationCall {
  std::string model_id;
  std::shared_ptr<Scheduler> scheduler;
  std::vector<int32_t> prompt;
  GenerationRequest gen;
  std::vector<std::string> format_stops;
};

}  // namespace

struct HttpServer::Impl {
  ModelManager& models;
  ConvertTasks& tasks;
  HttpOptions options;
  httplib::Server http;
  int port = -1;

  Impl(ModelManager& m, ConvertTasks& t, HttpOptions o) : models(m), tasks(t), options(std::move(o)) { routes(); }

  void routes();
  void generate(const httplib::Request& req, httplib::Response& res, bool chat);
  void stream(httplib::Response& res, const ResponseContext& ctx, std::shared_ptr<Job> job, bool include_usage);
  json model_object(const std::string& id) const {
    return {{"id", id}, {"object", "model"}, {"created", 0}, {"owned_by", "elm"}};
  }
};

void HttpServer::Impl::routes() {
  http.set_payload_max_length(options.max_body);
  // Streaming clients hold a connection thread each, so size the pool for the slots of a few models and
  // clients waiting in the queues: these threads mostly sleep, they do not compete for the cores.
  const size_t threads = options.threads > 0 ? size_t(options.threads)
                                             : size_t(std::max(64, 2 * models.config().parallel + 16));
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_keep_alive_timeout(5);  // an idle keep-alive connection holds a connection thread
  http.set_write_timeout(30);

  // Routes that fall through (unknown path, body over the limit, ...) get an OpenAI-shaped body too.
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string msg;
    if (res.status == 404) msg = cat("no route for ", req.method, " ", req.path);
    else if (res.status == 413) msg = "the request body is too large";
    else if (res.status == 405) msg = cat("method ", req.method, " is not allowed on ", req.path);
    else msg = cat("HTTP error ", res.status);
    res.set_content(dump_json(error_json(res.status, msg)), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    guarded(res, [&] { std::rethrow_exception(ep); });
  });
  if (options.log)
    http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      std::fprintf(stderr, "%s %s -> %d\n", req.method.c_str(), req.path.c_str(), res.status);
    });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    guarded(res, [&] { send_json(res, 200, {{"status", "ok"}, {"models", models.list()}, {"memory", memory_json()}}); });
  });

  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    guarded(res, [&] {
      json data = json::array();
      for (const json& m : models.list()) data.push_back(model_object(m["id"]));
      send_json(res, 200, {{"object", "list"}, {"data", data}});
    });
  });
  http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const std::string id = req.matches[1];
      for (const json& m : models.list())
        if (m["id"] == id) return send_json(res, 200, model_object(id));
      throw ApiError(404, cat("model '", id, "' does not exist"), "model", "model_not_found");
    });
  });

  http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { generate(req, res, true); });
  });
  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { generate(req, res, false); });
  });

  http.Get("/api/models", [this](const httplib::Request&, httplib::Response& res) {
    guarded(res, [&] {
      send_json(res, 200, {{"models", models.list()}, {"default", models.default_id()}});
    });
  });
  http.Post("/api/models/load", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const std::string id = required_string(parse_body(req.body), "model");
      models.load(id);
      send_json(res, 200, {{"model", id}, {"state", "loaded"}});
    });
  });
  http.Post("/api/models/unload", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const std::string id = required_string(parse_body(req.body), "model");
      if (!models.unload(id)) throw ApiError(409, cat("model '", id, "' is not loaded"), "model");
      send_json(res, 200, {{"model", id}, {"state", "unloaded"}});
    });
  });
  http.Post("/api/models/convert", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const json body = parse_body(req.body);
      const std::string id = required_string(body, "model");
      const std::string quant = body.contains("quant") ? required_string(body, "quant") : "";  // elm convert's default
      const std::string output = body.contains("output") ? required_string(body, "output") : "";
      const std::string task = tasks.start(id, quant, output);
      send_json(res, 202, tasks.get(task));
    });
  });
  http.Get("/api/tasks", [this](const httplib::Request&, httplib::Response& res) {
    guarded(res, [&] { send_json(res, 200, {{"tasks", tasks.list()}}); });
  });
  http.Get(R"(/api/tasks/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { send_json(res, 200, tasks.get(req.matches[1])); });
  });

  // The web GUI.
  for (const WebAsset& a : web_assets()) {
    const std::string path = a.path;
    auto serve = [a](const httplib::Request&, httplib::Response& res) {
      res.set_content(reinterpret_cast<const char*>(a.data), a.size, a.mime);
      res.set_header("Cache-Control", "no-cache");
    };
    http.Get(path, serve);
    if (path == "/index.html") http.Get("/", serve);
  }
}

void HttpServer::Impl::generate(const httplib::Request& req, httplib::Response& res, bool chat) {
  GenerationCall call;
  if (chat) {
    ChatRequest r = parse_chat_request(req.body);
    call.model_id = r.model;
    call.gen = std::move(r.gen);
    call.scheduler = models.get(call.model_id);
    ChatPrompt p = build_chat_prompt(call.scheduler->model(), r.messages);
    call.prompt = std::move(p.ids);
    call.format_stops = std::move(p.stop);
  } else {
    CompletionRequest r = parse_completion_request(req.body);
    call.model_id = r.model;
    call.gen = std::move(r.gen);
    call.scheduler = models.get(call.model_id);
    if (!r.prompt_ids.empty()) {
      call.prompt = std::move(r.prompt_ids);
    } else {
      const Model& m = call.scheduler->model();
      if (!m.tokenizer)
        throw ApiError(400, cat("model '", m.info.name, "' has no tokenizer: send the prompt as token ids"), "prompt");
      call.prompt = m.tokenizer->encode(r.prompt, /*add_special=*/true);
    }
  }
  if (call.model_id.empty()) call.model_id = call.scheduler->model().info.name;

  GenerationParams params;
  params.sampling = resolve_sampling(call.gen, call.scheduler->model().info);
  params.max_tokens = call.gen.max_tokens.value_or(-1);
  params.stop = call.gen.stop;
  params.stop.insert(params.stop.end(), call.format_stops.begin(), call.format_stops.end());
  std::shared_ptr<Job> job = call.scheduler->submit(std::move(call.prompt), std::move(params));
  call.scheduler.reset();  // an unload may proceed; the job finishes with an error then

  const ResponseContext ctx = make_response_context(chat, call.model_id);
  if (call.gen.stream) return stream(res, ctx, std::move(job), call.gen.include_usage);
  job->wait_finished();
  if (job->reason() == FinishReason::Error) throw ApiError(503, job->error());
  send_json(res, 200, completion_json(ctx, *job));
}

void HttpServer::Impl::stream(httplib::Response& res, const ResponseContext& ctx, std::shared_ptr<Job> job,
                              bool include_usage) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto first = std::make_shared<bool>(true);
  res.set_chunked_content_provider(
      "text/event-stream",
      [ctx, job, first, include_usage](size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
        if (*first) {  // the role chunk right away: clients see the stream has started
          *first = false;
          return write(sse_event(text_chunk_json(ctx, "", true)));
        }
        Job::Update u = job->next(kStreamPoll);
        if (!u.text.empty() && !write(sse_event(text_chunk_json(ctx, u.text, false)))) return false;
        if (!u.finished) {
          // A comment line on idle polls finds a client that went away even while the request waits
          // in the queue or reads a long prompt.
          return u.text.empty() ? write(": keep-alive\n\n") : true;
        }
        if (job->reason() == FinishReason::Error) {
          write(sse_event(error_json(503, job->error())));
        } else {
          write(sse_event(final_chunk_json(ctx, *job)));
          if (include_usage) write(sse_event(usage_chunk_json(ctx, *job)));
          write("data: [DONE]\n\n");
        }
        sink.done();
        return true;
      },
      // Whatever ended the response (done, a failed write, shutdown), the job stops if still running:
      // a client that disconnected frees its slot before the scheduler's next step.
      [job](bool) { job->cancel(); });
}

HttpServer::HttpServer(ModelManager& models, ConvertTasks& tasks, HttpOptions options)
    : impl_(std::make_unique<Impl>(models, tasks, std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  Impl& s = *impl_;
  if (s.options.port == 0) {
    s.port = s.http.bind_to_any_port(s.options.host);
  } else {
    s.port = s.http.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1;
  }
  ELM_CHECK(s.port > 0, "cannot listen on ", s.options.host, ":", s.options.port,
            " (address in use, or not an address of this machine)");
  return s.port;
}

int HttpServer::port() const { return impl_->port; }

void HttpServer::run() { impl_->http.listen_after_bind(); }

void HttpServer::stop() {
  if (impl_->http.is_running()) impl_->http.stop();
}

}  // namespace elm::server
