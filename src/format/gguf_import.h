// GGUF import: llama.cpp's model files read into an elm Model (weights, vocabulary, chat template).
#pragma once
#include <memory>
#include <string>

namespace elm {

struct Model;

std::shared_ptr<Model> load_gguf(const std::string& path);

}  // namespace elm
