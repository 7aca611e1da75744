// The .elm single-file model format (docs/format.md): reader and writer.
#pragma once
#include <memory>
#include <string>

namespace elm {

struct Model;

// Maps a .elm file and returns the model, weights used in place. Throws elm::Error on damaged files.
std::shared_ptr<Model> load_elm(const std::string& path);

}  // namespace elm
