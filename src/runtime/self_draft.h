// Self-drafting: the draft model for speculative decoding carved out of the target itself (fewer
// layers, narrower FFNs: graph/submodel.h), so no second checkpoint is needed. The draft shares the
// target's weights; only narrowed tensors get memory of their own (row prefixes of plain tensors are
// views, column prefixes and quantized slices are copies).
#pragma once
#include <memory>

#include "core/weight_store.h"
#include "graph/submodel.h"
#include "runtime/model.h"

namespace elm {

// source[:rows, :cols] as a tensor of the same type. Quantized tensors need cols to be a multiple of
// their group. The returned view points into `bytes` unless `bytes` is left empty (a zero-copy view of
// source).
TensorView slice_tensor(const TensorView& source, int64_t rows, int64_t cols, std::vector<uint8_t>& bytes);

// The sub-model of `target` given by spec, as a Model of its own (same tokenizer and metadata).
std::shared_ptr<Model> make_self_draft(const Model& target, const SubModelSpec& spec);

// What `--self-draft TEXT` asks for: "stored" is the self-draft the .elm file carries (elm::Error when
// it has none); a spec the file stores is used as stored; any other spec is carved now.
std::shared_ptr<Model> self_draft_for(const Model& target, const std::string& text);

// The draft Model of a stored self-draft (the target's weight store holds its sliced tensors).
std::shared_ptr<Model> stored_self_draft(const Model& target);

}  // namespace elm
