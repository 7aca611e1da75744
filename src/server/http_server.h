// The HTTP front of `elm serve` (cpp-httplib): the OpenAI-compatible API, model management, health and
// the embedded web GUI. Routes:
//   GET  /health                     {"status": "ok", ...}
//   GET  /v1/models, /v1/models/{id} OpenAI model list / object (every model in the models directory)
//   POST /v1/chat/completions        chat (stream: server-sent events)
//   POST /v1/completions             text completion
//   GET  /api/models                 every model with its state (unloaded, loading, loaded, failed) and load
//   POST /api/models/load            {"model": id}
//   POST /api/models/unload          {"model": id}
//   POST /api/models/convert         {"model": id, "quant": "int8"} -> 202 {task}: HF dir / GGUF -> .elm
//   GET  /api/tasks/{task}           a conversion's state and progress
//   GET  /, /app.js, ...             the web GUI
// Errors use OpenAI's shape; a handler's failure never takes the server down.
//
// Threads: httplib's pool serves connections (a streaming client holds one thread while it reads, so
// the pool is sized for the parallel slots plus queued clients); generation runs on the schedulers'
// threads.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "server/convert_tasks.h"
#include "server/model_manager.h"

namespace elm::server {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see HttpServer::port)
  size_t max_body = size_t(8) << 20;  // larger request bodies get 413
  int threads = 0;  // connection threads; 0: max(64, 2 * parallel + 16), the slots plus waiting clients
  bool log = false;  // one line per request on stderr
};

class HttpServer {
 public:
  HttpServer(ModelManager& models, ConvertTasks& tasks, HttpOptions options);
  ~HttpServer();
  // Binds the socket; throws elm::Error when the address is taken or invalid. Returns the port.
  int bind();
  int port() const;
  void run();   // serves until stop()
  void stop();  // from any thread, e.g. a signal watcher

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace elm::server
