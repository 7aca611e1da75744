#include "server/convert_tasks.h"

#include <filesystem>

#include "format/convert.h"
#include "quant/quantize.h"
#include "server/api_error.h"

namespace elm::server {

namespace fs = std::filesystem;

Converter elm_converter() {
  return [](const std::string& input, const std::string& output, const std::string& quant,
            const ConvertProgress& progress) {
    ConvertOptions o;
    o.quant = quant;
    o.progress = [&](uint64_t done, uint64_t total, const std::string& tensor) {
      progress(total ? double(done) / double(total) : 0.0, tensor);
    };
    convert_to_elm(input, output, o);
  };
}

ConvertTasks::ConvertTasks(std::string models_dir, Converter converter)
    : dir_(std::move(models_dir)), converter_(std::move(converter)) {}

ConvertTasks::~ConvertTasks() {
  abandon_ = true;
  for (auto& [id, t] : tasks_)
    if (t->thread.joinable()) t->thread.join();
}

std::string ConvertTasks::start(const std::string& id, const std::string& quant, const std::string& output) {
  if (!converter_)
    throw ApiError(501, "this build of elm cannot convert models yet (`elm convert` is not part of it)", "",
                   "convert_unavailable");
  const auto entries = scan_models_dir(dir_);
  const ModelEntry* entry = nullptr;
  for (const auto& e : entries)
    if (e.id == id) entry = &e;
  if (!entry) throw ApiError(404, cat("model '", id, "' does not exist"), "model", "model_not_found");
  if (entry->format == "elm") throw ApiError(400, cat("model '", id, "' is already a .elm file"), "model");
  const std::string stem = entry->format == "gguf" ? fs::path(id).stem().string() : id;
  // convert_to_elm's defaults: int4 for checkpoints, the file's own formats for GGUF.
  const std::string policy = quant.empty() ? (entry->format == "gguf" ? "keep" : kDefaultQuant) : quant;
  const std::string name = output.empty() ? stem + "-" + policy : output;
  if (name.empty() || name.find('/') != std::string::npos || name.find('\\') != std::string::npos || name[0] == '.')
    throw ApiError(400, cat("'output' must be a plain file name, got '", name, "'"), "output");
  const fs::path out = fs::path(dir_) / (name + ".elm");
  const fs::path part = fs::path(dir_) / (name + ".elm.part");

  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [tid, t] : tasks_)
    if (t->output == out.filename().string() && t->state == "running")
      throw ApiError(409, cat(out.filename().string(), " is being written by task ", tid), "output");
  if (fs::exists(out)) throw ApiError(409, cat(out.filename().string(), " already exists"), "output");

  auto task = std::make_unique<Task>();
  task->id = "convert-" + std::to_string(++next_);
  task->model = id;
  task->quant = policy;
  task->output = out.filename().string();
  Task* t = task.get();
  const std::string hf_dir = entry->path;
  t->thread = std::thread([this, t, hf_dir, out, part] {
    try {
      converter_(hf_dir, part.string(), t->quant, [this, t](double fraction, const std::string& what) {
        if (abandon_) fail("the server is shutting down");
        std::lock_guard<std::mutex> lock(mu_);
        t->progress = fraction;
        t->message = what;
      });
      fs::rename(part, out);
      std::lock_guard<std::mutex> lock(mu_);
      t->state = "done";
      t->progress = 1;
    } catch (const std::exception& e) {
      std::error_code ec;
      fs::remove(part, ec);
      std::lock_guard<std::mutex> lock(mu_);
      t->state = "failed";
      t->error = e.what();
    }
  });
  tasks_[task->id] = std::move(task);
  return t->id;
}

nlohmann::json ConvertTasks::to_json(const Task& t) const {
  nlohmann::json j = {{"id", t.id},         {"kind", "convert"},       {"model", t.model},
                      {"quant", t.quant},   {"output", t.output},      {"state", t.state},
                      {"progress", t.progress}, {"message", t.message}};
  if (!t.error.empty()) j["error"] = t.error;
  return j;
}

nlohmann::json ConvertTasks::get(const std::string& task) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(task);
  if (it == tasks_.end()) throw ApiError(404, cat("task '", task, "' does not exist"));
  return to_json(*it->second);
}

nlohmann::json ConvertTasks::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [id, t] : tasks_) out.push_back(to_json(*t));
  return out;
}

}  // namespace elm::server
