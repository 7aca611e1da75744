// elm serve: the OpenAI-compatible HTTP server and web GUI over every model in a directory.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <sstream>
#include <thread>

#include "cli.h"
#include "core/error.h"
#include "options.h"
#include "server/http_server.h"

namespace elm::cli {

namespace {
struct ServeArgs {
  server::ServeConfig serve;
  server::HttpOptions http;
  SpeculativeCliOptions spec;
  std::string kv_type = "auto";
  std::vector<std::string> preload;
  size_t max_body_mib = 8;
};

int run(ServeArgs& a) {
  if (a.kv_type != "auto") a.serve.kv_dtype = dtype_from_flag(a.kv_type);
  a.http.max_body = a.max_body_mib << 20;
  a.serve.speculation = a.spec.config();  // a --draft model loads once, here, for every model

  // SIGINT/SIGTERM are taken by a watcher thread (blocked everywhere else, so every thread started
  // from here inherits the mask); SIGPIPE is ignored so a client that hangs up is a failed write.
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  server::ModelManager models(a.serve);
  server::ConvertTasks tasks(a.serve.models_dir, server::elm_converter());
  for (const auto& id : a.preload) {
    std::fprintf(stderr, "loading %s\n", id.c_str());
    models.load(id);
  }
  server::HttpServer http(models, tasks, a.http);
  const int port = http.bind();
  std::fprintf(stderr, "elm serve: %zu model(s) in %s, %d parallel slot(s) each; http://%s:%d/\n",
               server::scan_models_dir(a.serve.models_dir).size(), a.serve.models_dir.c_str(), a.serve.parallel,
               a.http.host.c_str(), port);

  std::thread watcher([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig == SIGINT || sig == SIGTERM) std::fprintf(stderr, "elm serve: stopping\n");
    http.stop();
  });
  http.run();
  // run() also returns on its own (a listen failure): wake the watcher so it can be joined.
  pthread_kill(watcher.native_handle(), SIGTERM);
  watcher.join();
  return 0;
}
}  // namespace

void register_serve(CLI::App& app, Registry& reg) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* sub = app.add_subcommand("serve", "serve the models of a directory over an OpenAI-compatible API and a web GUI");
  sub->add_option("--models", a->serve.models_dir, "directory of models: .elm files, .gguf files, Hugging Face directories")
      ->required();
  sub->add_option("--host", a->http.host, "address to listen on")->capture_default_str();
  sub->add_option("--port", a->http.port, "port (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  sub->add_option("--parallel", a->serve.parallel, "requests generated at once per model (batched together)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  sub->add_option("-t,--threads", a->serve.threads, "CPU threads for the kernels (default: all cores)");
  sub->add_option("-c,--ctx", a->serve.ctx, "context per request in tokens (default: the model's, at most 4096)");
  sub->add_option("-b,--batch", a->serve.batch, "most tokens per forward step")->capture_default_str()->check(CLI::Range(1, 65536));
  sub->add_option("--backend", a->serve.backends, "backends in preference order (cpu, cuda, vulkan)")->delimiter(',');
  sub->add_option("--kv-type", a->kv_type, "KV cache element type: f32, f16, int8, auto (f16 unless the model is f32)")
      ->check(CLI::IsMember({"auto", "f32", "f16", "int8"}));
  sub->add_option("--load", a->preload, "models to load at start (ids as listed; others load on first use)")
      ->delimiter(',');
  sub->add_option("--max-queue", a->serve.max_queue, "requests waiting for a slot before 503")->capture_default_str();
  sub->add_option("--max-body", a->max_body_mib, "largest request body in MiB")->capture_default_str()->check(CLI::Range(1, 1024));
  sub->add_option("--http-threads", a->http.threads, "connection threads (default: enough for the slots and queue)");
  sub->add_flag("--log", a->http.log, "log every request to stderr");
  a->spec.add(sub);
  reg.add(sub, [a] { return run(*a); });
}

}  // namespace elm::cli
