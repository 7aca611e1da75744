// The models a server offers: every .elm file, .gguf file and Hugging Face directory (one holding a
// config.json) directly inside the models directory, rescanned on every listing so new files show up.
// Models load on demand (the first request naming one) or explicitly, and unload explicitly; each
// loaded model has its own Scheduler.
#pragma once
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "server/scheduler.h"

namespace elm::server {

struct ModelEntry {
  std::string id;      // the file or directory name
  std::string path;
  std::string format;  // "hf", "elm" or "gguf"
};

// Finds the model entries in `dir`, sorted by id. Throws elm::Error when `dir` is not a directory.
std::vector<ModelEntry> scan_models_dir(const std::string& dir);

struct ServeConfig {
  std::string models_dir;
  int parallel = 4;     // sequence slots per model
  int ctx = 0;          // context per slot; 0: the model's, at most 4096
  int batch = 512;      // most tokens per step
  int threads = 0;      // CPU kernel threads; 0: one per core
  std::optional<DType> kv_dtype;  // empty: Model::auto_kv_dtype
  std::vector<std::string> backends = {"cpu"};
  int max_queue = 1024;
  SpeculationConfig speculation;  // for every model it can draft for (SchedulerOptions::speculation)
  // How a model file or directory becomes a Model; empty: Model::load. Tests put their own here.
  std::function<std::shared_ptr<Model>(const std::string& path)> load_model;
};

class ModelManager {
 public:
  explicit ModelManager(ServeConfig config);
  ~ModelManager();

  // A loaded model's scheduler, loading it first when needed. ApiError 404 for an id not in the
  // directory, 500 when it fails to load. An empty id means the default model.
  std::shared_ptr<Scheduler> get(const std::string& id);
  std::shared_ptr<Scheduler> load(const std::string& id) { return get(id); }
  // Returns false when the model was not loaded. Requests still running on it end with an error.
  bool unload(const std::string& id);
  // The first loaded model, else the first in the directory; "" when the directory is empty.
  std::string default_id();

  // Every entry with its state: unloaded, loading, loaded or failed (with the error), and for loaded
  // ones the context, slots and load.
  nlohmann::json list();
  bool any_loaded();
  const ServeConfig& config() const { return config_; }

 private:
  struct Loaded {
    std::string state;  // "loading", "loaded", "failed"
    std::string error;
    std::shared_ptr<Scheduler> scheduler;
  };
  const ModelEntry* find(const std::vector<ModelEntry>& entries, const std::string& id) const;

  ServeConfig config_;
  std::shared_ptr<std::mutex> compute_lock_ = std::make_shared<std::mutex>();
  std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, Loaded> models_;
};

}  // namespace elm::server
