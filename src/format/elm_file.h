// The .elm single-file model format (docs/format.md): a model read from its container. The graph,
// metadata, tokenizer and compiled plans are parsed and validated; weights and compiled artifacts are
// used in place from the mapping.
#pragma once
#include <memory>
#include <string>

#include "format/elm_container.h"

namespace elm {

struct Model;

// Maps a .elm file and returns the model, weights used in place. Throws elm::Error on damaged files.
std::shared_ptr<Model> load_elm(const std::string& path);
// The model an opened container holds. Its weights point into `f`'s bytes: the model keeps f.file
// alive; for images from ElmFile::parse the caller keeps the bytes alive.
std::shared_ptr<Model> model_from_elm(const ElmFile& f);

}  // namespace elm
