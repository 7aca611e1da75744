#include "runtime/self_draft.h"

#include <cstring>

#include "core/error.h"

namespace elm {

TensorView slice_tensor(const TensorView& src, int64_t rows, int64_t cols, std::vector<uint8_t>& bytes) {
  const int64_t R = src.rows(), C = src.cols();
  ELM_CHECK(rows >= 1 && rows <= R && cols >= 1 && cols <= C, "cannot slice ", shape_str(src.shape), " to [", rows,
            ", ", cols, "]");
  TensorView v = src;
  v.shape = src.shape.size() == 1 ? Shape{cols} : Shape{rows, cols};
  const auto* base = static_cast<const uint8_t*>(src.data);
  bytes.clear();
  if (!is_quantized(src.dtype)) {
    const size_t es = dtype_size(src.dtype);
    v.nbytes = size_t(rows * cols) * es;
    if (cols == C) return v;  // a row prefix is contiguous: view it in place
    bytes.resize(v.nbytes);
    for (int64_t r = 0; r < rows; ++r) std::memcpy(bytes.data() + size_t(r * cols) * es, base + size_t(r * C) * es, size_t(cols) * es);
  } else {
    // Every plane keeps its first `rows` rows and, within them, the first cols / group groups.
    ELM_CHECK(cols % src.group == 0, "cannot slice a tensor quantized in groups of ", src.group, " to ", cols,
              " columns");
    const QuantLayout from = src.quant(), to = quant_layout(src.dtype, rows, cols, src.group, src.scale_dtype);
    const size_t qb_from = src.dtype == DType::Q8 ? size_t(C) : size_t(C) / 2, qb_to = src.dtype == DType::Q8 ? size_t(cols) : size_t(cols) / 2;
    const size_t ss = dtype_size(src.scale_dtype), g_from = size_t(C / src.group), g_to = size_t(cols / src.group);
    bytes.assign(to.total_bytes, 0);
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(bytes.data() + size_t(r) * qb_to, base + size_t(r) * qb_from, qb_to);
      std::memcpy(bytes.data() + to.scales_offset + size_t(r) * g_to * ss, base + from.scales_offset + size_t(r) * g_from * ss, g_to * ss);
      if (to.mins_offset)
        std::memcpy(bytes.data() + to.mins_offset + size_t(r) * g_to * ss, base + from.mins_offset + size_t(r) * g_from * ss, g_to * ss);
    }
    v.nbytes = bytes.size();
  }
  v.data = bytes.data();
  return v;
}

namespace {

std::shared_ptr<Model> draft_model(const Model& target, Graph graph, const std::string& spec) {
  auto m = std::make_shared<Model>();
  m->weights = target.weights;  // views (and the owners keeping them alive), not copies of the data
  m->graph = std::move(graph);
  m->info = target.info;
  m->info.name = target.info.name + " self-draft (" + spec + ")";
  m->tokenizer = target.tokenizer;
  m->chat_template = target.chat_template;
  return m;
}

}  // namespace

std::shared_ptr<Model> stored_self_draft(const Model& target) {
  ELM_CHECK(target.self_draft, target.info.name, " stores no self-draft (convert it with elm convert --self-draft SPEC, "
            "or give a spec, e.g. --self-draft 'layers=0-3;ffn=0.5')");
  return draft_model(target, target.self_draft->graph, target.self_draft->spec);
}

std::shared_ptr<Model> self_draft_for(const Model& target, const std::string& text) {
  if (text == "stored") return stored_self_draft(target);
  const SubModelSpec spec = SubModelSpec::parse(text);
  if (target.self_draft && target.self_draft->spec == spec.to_string()) return stored_self_draft(target);
  return make_self_draft(target, spec);
}

std::shared_ptr<Model> make_self_draft(const Model& target, const SubModelSpec& spec) {
  SubModel sm = carve_submodel(target.graph, target.weights.shapes(), spec);
  std::shared_ptr<Model> m = draft_model(target, std::move(sm.graph), spec.to_string());
  for (const TensorSlice& s : sm.slices) {
    if (m->weights.has(s.name)) continue;  // stored in the file already (names carry the shape)
    std::vector<uint8_t> bytes;
    const TensorView v = slice_tensor(target.weights.get(s.source), s.rows, s.cols, bytes);
    if (bytes.empty()) m->weights.add(s.name, v);
    else m->weights.add_owned_bytes(s.name, v, std::move(bytes));
  }
  return m;
}

}  // namespace elm
