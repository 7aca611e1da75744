#include "format/gguf.h"

#include <cstring>
#include <set>

#include "core/error.h"

namespace elm {

const char* ggml_type_name(uint32_t t) {
  switch (GgmlType(t)) {
    case GgmlType::F32: return "F32";
    case GgmlType::F16: return "F16";
    case GgmlType::Q4_0: return "Q4_0";
    case GgmlType::Q4_1: return "Q4_1";
    case GgmlType::Q5_0: return "Q5_0";
    case GgmlType::Q5_1: return "Q5_1";
    case GgmlType::Q8_0: return "Q8_0";
    case GgmlType::Q8_1: return "Q8_1";
    case GgmlType::Q2_K: return "Q2_K";
    case GgmlType::Q3_K: return "Q3_K";
    case GgmlType::Q4_K: return "Q4_K";
    case GgmlType::Q5_K: return "Q5_K";
    case GgmlType::Q6_K: return "Q6_K";
    case GgmlType::Q8_K: return "Q8_K";
    case GgmlType::IQ2_XXS: return "IQ2_XXS";
    case GgmlType::IQ2_XS: return "IQ2_XS";
    case GgmlType::IQ3_XXS: return "IQ3_XXS";
    case GgmlType::IQ1_S: return "IQ1_S";
    case GgmlType::IQ4_NL: return "IQ4_NL";
    case GgmlType::IQ3_S: return "IQ3_S";
    case GgmlType::IQ2_S: return "IQ2_S";
    case GgmlType::IQ4_XS: return "IQ4_XS";
    case GgmlType::IQ1_M: return "IQ1_M";
    case GgmlType::I8: return "I8";
    case GgmlType::I16: return "I16";
    case GgmlType::I32: return "I32";
    case GgmlType::I64: return "I64";
    case GgmlType::F64: return "F64";
    case GgmlType::BF16: return "BF16";
  }
  return "unknown";
}

size_t ggml_nbytes(uint32_t t, uint64_t n) {
  uint64_t block = 1, bytes = 0;
  switch (GgmlType(t)) {
    case GgmlType::F32: bytes = 4; break;
    case GgmlType::F16: bytes = 2; break;
    case GgmlType::BF16: bytes = 2; break;
    case GgmlType::I8: bytes = 1; break;
    case GgmlType::I16: bytes = 2; break;
    case GgmlType::I32: bytes = 4; break;
    case GgmlType::I64: bytes = 8; break;
    case GgmlType::F64: bytes = 8; break;
    case GgmlType::Q4_0: block = 32, bytes = 18; break;
    case GgmlType::Q4_1: block = 32, bytes = 20; break;
    case GgmlType::Q5_0: block = 32, bytes = 22; break;
    case GgmlType::Q5_1: block = 32, bytes = 24; break;
    case GgmlType::Q8_0: block = 32, bytes = 34; break;
    case GgmlType::Q8_1: block = 32, bytes = 36; break;
    case GgmlType::Q2_K: block = 256, bytes = 84; break;
    case GgmlType::Q3_K: block = 256, bytes = 110; break;
    case GgmlType::Q4_K: block = 256, bytes = 144; break;
    case GgmlType::Q5_K: block = 256, bytes = 176; break;
    case GgmlType::Q6_K: block = 256, bytes = 210; break;
    case GgmlType::Q8_K: block = 256, bytes = 292; break;
    case GgmlType::IQ4_NL: block = 32, bytes = 18; break;
    case GgmlType::IQ4_XS: block = 256, bytes = 136; break;
    default: fail("unsupported ggml tensor type ", ggml_type_name(t), " (", t, ")");
  }
  ELM_CHECK(n % block == 0, "ggml type ", ggml_type_name(t), " needs a multiple of ", block, " elements, got ", n);
  ELM_CHECK(n / block <= (uint64_t(1) << 44) / bytes, "tensor too large");
  return size_t(n / block * bytes);
}

uint64_t GgufTensor::numel() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

namespace {

class Reader {
 public:
  Reader(const uint8_t* p, size_t n, const std::string& label) : p_(p), n_(n), label_(label) {}
  size_t pos() const { return pos_; }
  template <class T>
  T read() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    const uint64_t len = read<uint64_t>();
    need(len);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }
  void need(uint64_t k) const {
    if (k > n_ - pos_) fail(label_, ": truncated GGUF (needs ", k, " more bytes at offset ", pos_, ")");
  }
  nlohmann::json value(uint32_t type, int depth) {
    switch (type) {
      case 0: return read<uint8_t>();
      case 1: return read<int8_t>();
      case 2: return read<uint16_t>();
      case 3: return read<int16_t>();
      case 4: return read<uint32_t>();
      case 5: return read<int32_t>();
      case 6: return double(read<float>());
      case 7: {
        const uint8_t b = read<uint8_t>();
        ELM_CHECK(b <= 1, label_, ": bool value ", int(b), " at offset ", pos_ - 1);
        return b != 0;
      }
      case 8: return str();
      case 9: {
        ELM_CHECK(depth < 4, label_, ": arrays nested too deep");
        const uint32_t et = read<uint32_t>();
        const uint64_t count = read<uint64_t>();
        // Every element takes at least one byte: a count beyond the remaining bytes is corrupt.
        ELM_CHECK(count <= n_ - pos_, label_, ": array of ", count, " elements exceeds the file");
        nlohmann::json a = nlohmann::json::array();
        for (uint64_t i = 0; i < count; ++i) a.push_back(value(et, depth + 1));
        return a;
      }
      case 10: return read<uint64_t>();
      case 11: return read<int64_t>();
      case 12: return read<double>();
      default: fail(label_, ": unknown metadata value type ", type, " at offset ", pos_);
    }
  }

 private:
  const uint8_t* p_;
  size_t n_;
  std::string label_;
  size_t pos_ = 0;
};

}  // namespace

GgufFile GgufFile::open(const std::string& path) {
  auto f = MappedFile::open(path);
  GgufFile g = parse(f->data(), f->size(), path);
  g.file = f;
  return g;
}

GgufFile GgufFile::parse(const uint8_t* bytes, size_t size, const std::string& label) {
  GgufFile g;
  Reader r(bytes, size, label);
  r.need(4);
  ELM_CHECK(std::memcmp(bytes, "GGUF", 4) == 0, label, ": not a GGUF file (bad magic)");
  r.read<uint32_t>();
  g.version = r.read<uint32_t>();
  ELM_CHECK(g.version == 2 || g.version == 3, label, ": GGUF version ", g.version, " is not supported (2 and 3 are)");
  const uint64_t n_tensors = r.read<uint64_t>(), n_kv = r.read<uint64_t>();
  ELM_CHECK(n_tensors <= size / 8 && n_kv <= size / 8, label, ": absurd tensor or metadata count");
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = r.str();
    const uint32_t type = r.read<uint32_t>();
    ELM_CHECK(!g.meta.contains(key), label, ": duplicate metadata key '", key, "'");
    g.meta[key] = r.value(type, 0);
  }
  if (g.meta.contains("general.alignment")) {
    const auto& a = g.meta["general.alignment"];
    ELM_CHECK(a.is_number_unsigned() && a.get<uint64_t>() > 0 && a.get<uint64_t>() <= 65536 &&
                  (a.get<uint64_t>() & (a.get<uint64_t>() - 1)) == 0,
              label, ": general.alignment must be a power of two");
    g.alignment = a.get<size_t>();
  }
  std::set<std::string> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = r.str();
    ELM_CHECK(names.insert(t.name).second, label, ": duplicate tensor '", t.name, "'");
    const uint32_t nd = r.read<uint32_t>();
    ELM_CHECK(nd >= 1 && nd <= 4, label, ": tensor '", t.name, "' has ", nd, " dimensions");
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t dim = r.read<uint64_t>();
      ELM_CHECK(dim > 0 && dim < (uint64_t(1) << 40), label, ": tensor '", t.name, "' has dimension ", dim);
      t.dims.push_back(dim);
    }
    t.type = r.read<uint32_t>();
    t.offset = r.read<uint64_t>();
    uint64_t n = 1;
    for (uint64_t d : t.dims) {
      ELM_CHECK(n <= (uint64_t(1) << 42) / d, label, ": tensor '", t.name, "' is too large");
      n *= d;
    }
    try {
      t.nbytes = ggml_nbytes(t.type, n);
    } catch (const Error& e) {
      fail(label, ": tensor '", t.name, "': ", e.what());
    }
    g.tensors.push_back(std::move(t));
  }
  const size_t data_start = (r.pos() + g.alignment - 1) / g.alignment * g.alignment;
  ELM_CHECK(data_start <= size || g.tensors.empty(), label, ": truncated before the tensor data");
  for (auto& t : g.tensors) {
    ELM_CHECK(t.offset % g.alignment == 0, label, ": tensor '", t.name, "' offset is not aligned");
    ELM_CHECK(data_start <= size && t.offset <= size - data_start && t.nbytes <= size - data_start - t.offset, label,
              ": tensor '", t.name, "' data lies outside the file (truncated?)");
    t.data = bytes + data_start + t.offset;
  }
  return g;
}

const GgufTensor* GgufFile::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

int64_t GgufFile::get_int(const std::string& key) const {
  ELM_CHECK(meta.contains(key), "GGUF metadata has no '", key, "'");
  const auto& v = meta[key];
  ELM_CHECK(v.is_number_integer(), "GGUF metadata '", key, "' must be an integer");
  return v.get<int64_t>();
}

int64_t GgufFile::get_int(const std::string& key, int64_t def) const { return meta.contains(key) ? get_int(key) : def; }

double GgufFile::get_float(const std::string& key, double def) const {
  if (!meta.contains(key)) return def;
  ELM_CHECK(meta[key].is_number(), "GGUF metadata '", key, "' must be a number");
  return meta[key].get<double>();
}

std::string GgufFile::get_string(const std::string& key, const std::string& def) const {
  if (!meta.contains(key)) return def;
  ELM_CHECK(meta[key].is_string(), "GGUF metadata '", key, "' must be a string");
  return meta[key].get<std::string>();
}

}  // namespace elm
