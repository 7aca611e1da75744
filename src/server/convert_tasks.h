// Converting a Hugging Face directory or GGUF file of the models directory into a .elm file beside it,
// as a background task whose progress clients poll (POST /api/models/convert, GET /api/tasks/{id}).
// The file is written under a temporary name and renamed when complete, so a half-written model is
// never listed. The conversion itself is a Converter: `elm convert`'s (convert_to_elm) by default; a
// server given none answers 501.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "server/model_manager.h"

namespace elm::server {

// Reports progress in [0, 1] with a short description; throws to abandon the conversion.
using ConvertProgress = std::function<void(double fraction, const std::string& what)>;
using Converter = std::function<void(const std::string& hf_dir, const std::string& out_path,
                                     const std::string& quant, const ConvertProgress& progress)>;

// convert_to_elm with its byte counts turned into a fraction.
Converter elm_converter();

class ConvertTasks {
 public:
  ConvertTasks(std::string models_dir, Converter converter);
  ~ConvertTasks();  // abandons running conversions and waits for them

  // Starts converting model `id` (an HF directory or a GGUF file) into <models_dir>/<output>.elm
  // (default: <id stem>-<quant>). Returns the task id. ApiError: 501 without a converter, 404 unknown
  // model, 400 for a .elm model or a bad output name, 409 when the output exists or is being written.
  std::string start(const std::string& id, const std::string& quant, const std::string& output);
  nlohmann::json get(const std::string& task) const;  // ApiError 404 for an unknown task
  nlohmann::json list() const;

 private:
  struct Task {
    std::string id, model, quant, output, state = "running", message, error;  // state: running, done, failed
    double progress = 0;
    std::thread thread;
  };
  nlohmann::json to_json(const Task& t) const;

  std::string dir_;
  Converter converter_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Task>> tasks_;
  std::atomic<bool> abandon_{false};
  int next_ = 0;
};

}  // namespace elm::server
