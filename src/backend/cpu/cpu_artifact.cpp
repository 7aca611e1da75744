#include "backend/cpu/cpu_artifact.h"

#include <cstring>
#include <set>

#include "core/error.h"
#include "core/mapped_file.h"

namespace elm::cpu {

namespace {

constexpr char kMagic[8] = {'E', 'L', 'M', 'C', 'P', 'U', 'P', 'K'};

template <class T>
void put(std::vector<uint8_t>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

// Bounds-checked reads from an untrusted artifact.
struct Reader {
  std::span<const uint8_t> data;
  size_t at = 0;
  template <class T>
  T get() {
    ELM_CHECK(at <= data.size() && data.size() - at >= sizeof(T), "cpu artifact is truncated");
    T v;
    std::memcpy(&v, data.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  std::string str(size_t n) {
    ELM_CHECK(at <= data.size() && data.size() - at >= n, "cpu artifact is truncated");
    std::string s(reinterpret_cast<const char*>(data.data() + at), n);
    at += n;
    return s;
  }
};

}  // namespace

std::vector<std::string> packable_weights(const SegmentSpec& spec) {
  const Graph& g = *spec.graph;
  std::set<std::string> names;
  for (int32_t id : spec.nodes) {
    const Node& n = g.nodes[size_t(id)];
    if (n.op != Op::MatMul) continue;
    const Node& w = g.nodes[size_t(n.inputs[1])];
    if (w.op == Op::Weight && is_quantized(spec.weights->get(w.name).dtype)) names.insert(w.name);
  }
  return {names.begin(), names.end()};
}

void pack_weight(const QMatrix& w, uint8_t* out, ThreadPool& pool) {
  pack_weight(w, out, pool, 0, (w.n + kPanelRows - 1) / kPanelRows);
}

void pack_weight(const QMatrix& w, uint8_t* out, ThreadPool& pool, int64_t first, int64_t last) {
  const QKernels* qk = qkernels(active_isa());
  const size_t pb = packed_panel_bytes(w.type, w.k, w.group, w.f32_scales);
  pool.parallel_for_dynamic(last - first, [&](int64_t i0, int64_t i1) {
    const int64_t p0 = first + i0, p1 = first + i1;
    // A fresh buffer's pages are faulted in (and zeroed by the kernel) by the thread that fills them,
    // a chunk at a time: one fault per 4 KiB costs more than the packing, and one thread zeroing the
    // whole buffer first leaves the other cores idle.
    populate_write(out + size_t(p0) * pb, size_t(p1 - p0) * pb);
    if (qk) qk->pack(w, p0, p1, out + size_t(p0) * pb);
    else pack_panels(w, p0, p1, out + size_t(p0) * pb);
  }, 16);
}

std::vector<uint8_t> build_artifact(const SegmentSpec& spec, ThreadPool& pool) {
  const std::vector<std::string> names = packable_weights(spec);
  if (names.empty()) return {};
  std::vector<uint8_t> out(kMagic, kMagic + 8);
  put(out, kArtifactVersion);
  put(out, uint32_t(names.size()));
  // Directory first (offsets filled in below), then the blobs.
  std::vector<size_t> offset_at;
  std::vector<QMatrix> mats;
  for (const std::string& name : names) {
    const QMatrix m = qmatrix(spec.weights->get(name));
    mats.push_back(m);
    put(out, uint32_t(name.size()));
    out.insert(out.end(), name.begin(), name.end());
    put(out, uint8_t(m.type));
    put(out, uint8_t(m.f32_scales));
    put(out, uint16_t(0));
    put(out, uint32_t(m.group));
    put(out, int64_t(m.n));
    put(out, int64_t(m.k));
    offset_at.push_back(out.size());
    put(out, uint64_t(0));
    put(out, uint64_t(packed_bytes(m)));
  }
  for (size_t i = 0; i < mats.size(); ++i) {
    const size_t at = align_up(out.size(), kPlaneAlign), size = packed_bytes(mats[i]);
    out.resize(at + size);
    const uint64_t off = at;
    std::memcpy(out.data() + offset_at[i], &off, 8);
    pack_weight(mats[i], out.data() + at, pool);
  }
  return out;
}

bool is_artifact(std::span<const uint8_t> a) {
  if (a.size() < 16 || std::memcmp(a.data(), kMagic, 8) != 0) return false;
  uint32_t version;
  std::memcpy(&version, a.data() + 8, 4);
  return version == kArtifactVersion;
}

std::map<std::string, PackedQ> read_artifact(std::span<const uint8_t> artifact, const WeightStore& weights) {
  ELM_CHECK(is_artifact(artifact), "cpu artifact: bad magic or version (recompile the model with `elm compile`)");
  Reader r{artifact, 12};
  const uint32_t count = r.get<uint32_t>();
  ELM_CHECK(count <= artifact.size() / 40, "cpu artifact: implausible entry count ", count);
  std::map<std::string, PackedQ> out;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t len = r.get<uint32_t>();
    const std::string name = r.str(len);
    const auto dtype = DType(r.get<uint8_t>());
    const bool f32 = r.get<uint8_t>() != 0;
    r.get<uint16_t>();
    const uint32_t group = r.get<uint32_t>();
    const int64_t n = r.get<int64_t>(), k = r.get<int64_t>();
    const uint64_t offset = r.get<uint64_t>(), size = r.get<uint64_t>();
    ELM_CHECK(weights.has(name), "cpu artifact: unknown tensor '", name, "'");
    const TensorView& t = weights.get(name);
    ELM_CHECK(is_quantized(t.dtype) && t.dtype == dtype && t.group == int(group) &&
                  (t.scale_dtype == DType::F32) == f32 && t.rows() == n && t.cols() == k,
              "cpu artifact: tensor '", name, "' does not match the model's weights");
    const PackedQ p{dtype, n, k, int(group), f32, nullptr};
    const QMatrix m = qmatrix(t);
    ELM_CHECK(size == packed_bytes(m) && offset % kPlaneAlign == 0 && offset <= artifact.size() &&
                  artifact.size() - offset >= size,
              "cpu artifact: tensor '", name, "' lies outside the artifact");
    out[name] = p;
    out[name].data = artifact.data() + offset;
  }
  return out;
}

}  // namespace elm::cpu
