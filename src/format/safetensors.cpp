#include "format/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace elm {

namespace fs = std::filesystem;

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto file = MappedFile::open(path);
  SafetensorsFile f = parse(file->data(), file->size(), path);
  f.file_ = file;
  return f;
}

SafetensorsFile SafetensorsFile::parse(const uint8_t* bytes, size_t size, const std::string& label) {
  SafetensorsFile f;
  ELM_CHECK(size >= 8, label, ": not a safetensors file (", size, " bytes, too short for a header)");
  uint64_t n = 0;
  std::memcpy(&n, bytes, 8);
  ELM_CHECK(n >= 2 && n <= size - 8, label, ": header length ", n, " does not fit in the ", size,
            "-byte file (truncated or not safetensors)");
  const char* hdr = reinterpret_cast<const char*>(bytes + 8);
  nlohmann::json j = nlohmann::json::parse(hdr, hdr + n, nullptr, /*allow_exceptions=*/false);
  ELM_CHECK(!j.is_discarded() && j.is_object(), label, ": header is not a JSON object");
  const uint8_t* data = bytes + 8 + n;
  const size_t data_size = size - 8 - size_t(n);

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& item : j.items()) {
    // Named copies rather than a structured binding: lambdas below capture them (clang 14 cannot
    // capture structured bindings).
    const std::string& name = item.key();
    const nlohmann::json& e = item.value();
    if (name == "__metadata__") {
      ELM_CHECK(e.is_object(), label, ": __metadata__ must be an object");
      for (const auto& [k, v] : e.items())
        if (v.is_string()) f.metadata_[k] = v.get<std::string>();
      continue;
    }
    auto where = [&] { return cat(label, ": tensor '", name, "'"); };
    ELM_CHECK(e.is_object() && e.contains("dtype") && e["dtype"].is_string() && e.contains("shape") &&
                  e["shape"].is_array() && e.contains("data_offsets") && e["data_offsets"].is_array() &&
                  e["data_offsets"].size() == 2,
              where(), ": entry needs dtype, shape and data_offsets");
    TensorView v;
    const std::string dt = e["dtype"].get<std::string>();
    if (dt == "F32") v.dtype = DType::F32;
    else if (dt == "F16") v.dtype = DType::F16;
    else if (dt == "BF16") v.dtype = DType::BF16;
    else if (dt == "I32") v.dtype = DType::I32;
    else if (dt == "I8") v.dtype = DType::I8;
    else fail(where(), ": unsupported dtype ", dt, " (elm reads F32, F16, BF16, I32, I8)");
    for (const auto& d : e["shape"]) {
      ELM_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), where(),
                ": shape must hold non-negative integers");
      v.shape.push_back(d.get<int64_t>());
    }
    ELM_CHECK(v.shape.size() <= 8, where(), ": too many dimensions");
    for (const auto& o : e["data_offsets"])
      ELM_CHECK(o.is_number_unsigned() || (o.is_number_integer() && o.get<int64_t>() >= 0), where(),
                ": data_offsets must be non-negative integers");
    uint64_t b = e["data_offsets"][0].get<uint64_t>(), en = e["data_offsets"][1].get<uint64_t>();
    ELM_CHECK(b <= en && en <= data_size, where(), ": data_offsets [", b, ", ", en, "] outside the ", data_size,
              "-byte data area (file truncated?)");
    size_t expect = tensor_nbytes(v.dtype, v.shape);
    ELM_CHECK(en - b == expect, where(), ": ", en - b, " bytes of data for shape ", shape_str(v.shape), " ", dt,
              " (expected ", expect, ")");
    v.data = data + b;
    v.nbytes = size_t(en - b);
    ranges.emplace_back(b, en);
    f.tensors_[name] = v;
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    ELM_CHECK(ranges[i].first >= ranges[i - 1].second, label, ": tensor data regions overlap");
  return f;
}

SafetensorsSet SafetensorsSet::open_dir(const std::string& dir) {
  SafetensorsSet set;
  auto add_file = [&](const std::string& path) {
    SafetensorsFile f = SafetensorsFile::open(path);
    for (const auto& [name, v] : f.tensors()) {
      ELM_CHECK(!set.tensors.count(name), path, ": tensor '", name, "' also appears in another shard");
      set.tensors[name] = v;
    }
    set.files.push_back(f.mapping());
  };
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single = fs::path(dir) / "model.safetensors";
  if (fs::exists(index)) {
    nlohmann::json j = nlohmann::json::parse(read_text_file(index.string()), nullptr, false);
    ELM_CHECK(!j.is_discarded() && j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
              index.string(), ": malformed index (needs a weight_map object)");
    std::set<std::string> shards;
    for (const auto& [name, shard] : j["weight_map"].items()) {
      ELM_CHECK(shard.is_string(), index.string(), ": weight_map values must be file names");
      std::string s = shard.get<std::string>();
      ELM_CHECK(s.find('/') == std::string::npos && s.find("..") == std::string::npos, index.string(),
                ": shard name '", s, "' must be a plain file name");
      shards.insert(s);
    }
    for (const auto& s : shards) add_file((fs::path(dir) / s).string());
    for (const auto& [name, shard] : j["weight_map"].items())
      ELM_CHECK(set.tensors.count(name), index.string(), ": tensor '", name, "' is not in shard ",
                shard.get<std::string>());
  } else if (fs::exists(single)) {
    add_file(single.string());
  } else {
    fail(dir, ": no model.safetensors or model.safetensors.index.json");
  }
  return set;
}

void write_safetensors(const std::string& path, const std::map<std::string, TensorView>& tensors) {
  nlohmann::json h = nlohmann::json::object();
  uint64_t off = 0;
  for (const auto& [name, v] : tensors) {
    ELM_CHECK(!is_quantized(v.dtype), "write_safetensors: '", name, "' is quantized");
    h[name] = {{"dtype", std::string(dtype_name(v.dtype))}, {"shape", v.shape}, {"data_offsets", {off, off + v.nbytes}}};
    off += v.nbytes;
  }
  std::string hs = h.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary);
  ELM_CHECK(out.good(), "cannot write '", path, "'");
  const uint64_t n = hs.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(hs.data(), std::streamsize(hs.size()));
  for (const auto& [name, v] : tensors) out.write(static_cast<const char*>(v.data), std::streamsize(v.nbytes));
  ELM_CHECK(out.good(), "error writing '", path, "'");
}

}  // namespace elm
