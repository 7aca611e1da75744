#include "backend/vulkan/vk_artifact.h"

#include <spirv-tools/libspirv.h>

#include <cstring>

#include "core/error.h"

namespace elm::vk {

namespace {
constexpr char kMagic[8] = {'E', 'L', 'M', 'V', 'K', 'S', 'P', 'V'};
constexpr uint32_t kSpirvMagic = 0x07230203;

void put32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

struct Reader {
  std::span<const uint8_t> b;
  size_t at = 0;
  void need(size_t n) const {
    ELM_CHECK(n <= b.size() - at, "Vulkan artifact is truncated (", b.size(), " bytes)");
  }
  uint32_t u32() {
    need(4);
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t(b[at + size_t(i)]) << (8 * i);
    at += 4;
    return v;
  }
};
}  // namespace

void validate_spirv(const std::string& name, std::span<const uint32_t> words) {
  spv_context ctx = spvContextCreate(SPV_ENV_VULKAN_1_2);
  spv_const_binary_t bin{words.data(), words.size()};
  spv_diagnostic diag = nullptr;
  const spv_result_t r = spvValidate(ctx, &bin, &diag);
  std::string msg = diag && diag->error ? diag->error : "";
  spvDiagnosticDestroy(diag);
  spvContextDestroy(ctx);
  ELM_CHECK(r == SPV_SUCCESS, "Vulkan artifact: shader '", name, "' is not valid SPIR-V (", msg, ")");
}

std::vector<uint8_t> write_artifact(const ShaderSet& shaders) {
  std::vector<uint8_t> out(kMagic, kMagic + 8);
  put32(out, kShaderAbi);
  put32(out, uint32_t(shaders.size()));
  for (const auto& [name, words] : shaders) {
    put32(out, uint32_t(name.size()));
    out.insert(out.end(), name.begin(), name.end());
    put32(out, uint32_t(words.size()));
    for (uint32_t w : words) put32(out, w);
  }
  return out;
}

ShaderSet read_artifact(std::span<const uint8_t> bytes) {
  Reader r{bytes};
  r.need(8);
  ELM_CHECK(std::memcmp(bytes.data(), kMagic, 8) == 0, "not a Vulkan artifact (bad magic)");
  r.at = 8;
  const uint32_t abi = r.u32();
  ELM_CHECK(abi == kShaderAbi, "Vulkan artifact has shader ABI ", abi, ", this build uses ", kShaderAbi);
  const uint32_t count = r.u32();
  ELM_CHECK(count <= 1024, "Vulkan artifact lists ", count, " shaders");
  ShaderSet set;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t len = r.u32();
    ELM_CHECK(len > 0 && len <= 256, "Vulkan artifact: bad shader name length ", len);
    r.need(len);
    std::string name(reinterpret_cast<const char*>(bytes.data() + r.at), len);
    r.at += len;
    const uint32_t n = r.u32();
    ELM_CHECK(n >= 5 && n <= (bytes.size() - r.at) / 4, "Vulkan artifact: shader '", name, "' is truncated");
    std::vector<uint32_t> words(n);
    for (uint32_t& w : words) w = r.u32();
    ELM_CHECK(words[0] == kSpirvMagic, "Vulkan artifact: shader '", name, "' is not SPIR-V");
    validate_spirv(name, words);
    ELM_CHECK(set.emplace(std::move(name), std::move(words)).second, "Vulkan artifact: shader listed twice");
  }
  ELM_CHECK(r.at == bytes.size(), "Vulkan artifact has ", bytes.size() - r.at, " trailing bytes");
  return set;
}

}  // namespace elm::vk
