#include "server/model_manager.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "server/api_error.h"

namespace elm::server {

namespace fs = std::filesystem;

std::vector<ModelEntry> scan_models_dir(const std::string& dir) {
  std::error_code ec;
  ELM_CHECK(fs::is_directory(dir, ec), "models directory '", dir, "' does not exist or is not a directory");
  std::vector<ModelEntry> out;
  for (const auto& e : fs::directory_iterator(dir, fs::directory_options::skip_permission_denied, ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    const std::string ext = e.path().extension().string();
    if (e.is_directory(ec) && fs::exists(e.path() / "config.json", ec))
      out.push_back({name, e.path().string(), "hf"});
    else if (e.is_regular_file(ec) && (ext == ".elm" || ext == ".gguf"))
      out.push_back({name, e.path().string(), ext.substr(1)});
  }
  std::sort(out.begin(), out.end(), [](const ModelEntry& a, const ModelEntry& b) { return a.id < b.id; });
  return out;
}

ModelManager::ModelManager(ServeConfig config) : config_(std::move(config)) {
  scan_models_dir(config_.models_dir);  // fail early on a bad directory
}

ModelManager::~ModelManager() {
  std::map<std::string, Loaded> models;
  {
    std::lock_guard<std::mutex> lock(mu_);
    models.swap(models_);
  }
  for (auto& [id, m] : models)
    if (m.scheduler) m.scheduler->shutdown("the server is shutting down");
}

const ModelEntry* ModelManager::find(const std::vector<ModelEntry>& entries, const std::string& id) const {
  for (const auto& e : entries)
    if (e.id == id) return &e;
  return nullptr;
}

std::string ModelManager::default_id() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, m] : models_)
      if (m.state == "loaded") return id;
  }
  const auto entries = scan_models_dir(config_.models_dir);
  return entries.empty() ? "" : entries.front().id;
}

std::shared_ptr<Scheduler> ModelManager::get(const std::string& requested) {
  const std::string id = requested.empty() ? default_id() : requested;
  if (id.empty()) throw ApiError(404, "no models are available: the models directory is empty", "model");
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    auto it = models_.find(id);
    if (it == models_.end() || it->second.state == "failed") break;  // (re)try loading
    if (it->second.state == "loaded") return it->second.scheduler;
    changed_.wait(lock);  // another request is loading it
  }
  const auto entries = scan_models_dir(config_.models_dir);
  const ModelEntry* entry = find(entries, id);
  if (!entry) {
    std::string names;
    for (const auto& e : entries) names += (names.empty() ? "" : ", ") + e.id;
    throw ApiError(404, cat("model '", id, "' does not exist; available: ", names.empty() ? "none" : names), "model",
                   "model_not_found");
  }
  models_[id] = Loaded{"loading", "", nullptr};
  const std::string path = entry->path;
  lock.unlock();

  std::shared_ptr<Scheduler> sched;
  std::string error;
  try {
    std::shared_ptr<Model> model = config_.load_model ? config_.load_model(path) : Model::load(path);
    model->info.name = id;
    SchedulerOptions o;
    const int64_t model_ctx = model->info.context_length > 0 ? model->info.context_length : 4096;
    o.runtime.n_ctx = int(config_.ctx > 0 ? config_.ctx : std::min<int64_t>(model_ctx, 4096));
    o.runtime.max_batch = std::min(config_.batch, o.runtime.n_ctx);
    o.runtime.max_seqs = config_.parallel;
    o.runtime.threads = config_.threads;
    o.runtime.kv_dtype = config_.kv_dtype.value_or(model->auto_kv_dtype());
    o.backends = config_.backends;
    o.max_queue = config_.max_queue;
    o.compute_lock = compute_lock_;
    o.speculation = config_.speculation;
    sched = std::make_shared<Scheduler>(std::move(model), std::move(o));
    if (!sched->speculation_error().empty())
      std::fprintf(stderr, "elm serve: model '%s' decodes without speculation: %s\n", id.c_str(),
                   sched->speculation_error().c_str());
  } catch (const std::exception& e) {
    error = e.what();
  }
  lock.lock();
  Loaded& l = models_[id];
  l.state = sched ? "loaded" : "failed";
  l.error = error;
  l.scheduler = sched;
  changed_.notify_all();
  if (!sched) throw ApiError(500, cat("could not load model '", id, "': ", error), "model", "model_load_failed");
  return sched;
}

bool ModelManager::unload(const std::string& id) {
  std::shared_ptr<Scheduler> sched;
  {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return !models_.count(id) || models_[id].state != "loading"; });
    auto it = models_.find(id);
    if (it == models_.end()) return false;
    sched = it->second.scheduler;
    models_.erase(it);
    changed_.notify_all();
  }
  if (sched) sched->shutdown("the model was unloaded");
  return sched != nullptr;
}

bool ModelManager::any_loaded() {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, m] : models_)
    if (m.state == "loaded") return true;
  return false;
}

nlohmann::json ModelManager::list() {
  const auto entries = scan_models_dir(config_.models_dir);
  nlohmann::json out = nlohmann::json::array();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& e : entries) {
    nlohmann::json j = {{"id", e.id}, {"format", e.format}, {"state", "unloaded"}};
    auto it = models_.find(e.id);
    if (it != models_.end()) {
      j["state"] = it->second.state;
      if (!it->second.error.empty()) j["error"] = it->second.error;
      if (const auto& s = it->second.scheduler) {
        const Model& m = s->model();
        const Scheduler::Stats st = s->stats();
        j["family"] = m.info.family;
        j["context_length"] = s->n_ctx();
        j["vocab_size"] = m.info.vocab_size;
        j["chat_template"] = !m.chat_template.empty();
        j["tokenizer"] = m.tokenizer != nullptr;
        j["slots"] = st.slots;
        j["active"] = st.active;
        j["queued"] = st.queued;
        j["tokens_generated"] = st.tokens_generated;
        if (!s->speculation().empty()) j["speculative"] = s->speculation();
        if (!s->speculation_error().empty()) j["speculative_error"] = s->speculation_error();
      }
    }
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace elm::server
