#include "backend/vulkan/vulkan_backend.h"

#include <cstdlib>
#include <cstring>

#include "backend/vulkan/vk_segment.h"
#include "backend/vulkan/vk_shaders.h"

namespace elm {

namespace {

using namespace vk;

class VulkanBackend : public Backend {
 public:
  VulkanBackend(const RuntimeConfig& config, const VulkanOptions& o) : config_(config) {
    sh_ = std::make_shared<Shared>();
    sh_->ctx = Context::get(o.device);
    const DeviceInfo& info = sh_->ctx->info();
    const char* env_sg = std::getenv("ELM_VULKAN_SUBGROUPS");
    const bool want_sg = o.subgroups >= 0 ? o.subgroups != 0 : !(env_sg && std::strcmp(env_sg, "0") == 0);
    sh_->subgroups = want_sg && info.subgroup_arithmetic;
    Tuning& t = sh_->tuning;
    t.max_range = std::min<uint64_t>(info.max_storage_range, uint64_t(1) << 32);
    t.max_groups_x = info.max_group_count_x;
    t.max_shared = info.max_shared_memory;
    const char* env_sx = std::getenv("ELM_VULKAN_MATVEC_SHARED_X");  // opt-in until measured on a GPU
    t.matvec_shared_x = o.shared_x >= 0 ? o.shared_x != 0 : env_sx && std::strcmp(env_sx, "1") == 0;
    const char* env_lg = std::getenv("ELM_VULKAN_MATVEC_LEGACY");
    t.matvec_legacy = o.legacy_matvec >= 0 ? o.legacy_matvec != 0 : env_lg && std::strcmp(env_lg, "1") == 0;
    const char* env_i8 = std::getenv("ELM_VULKAN_INT8");
    const bool want_i8 = o.int8 >= 0 ? o.int8 != 0 : !(env_i8 && std::strcmp(env_i8, "0") == 0);
    t.matvec_int8 = want_i8 && info.integer_dot_product;
    if (t.matvec_legacy) t.matvec_blocks = 1;  // the legacy kernel's default (32-value blocks per invocation)
    const char* env_mv = std::getenv("ELM_VULKAN_MATVEC");
    const std::string mv = !o.matvec.empty() ? o.matvec : env_mv ? env_mv : "";
    if (!mv.empty()) {
      unsigned rows = 0, blocks = 0, tpr = 0;
      char sg[3] = {};
      int n = std::sscanf(mv.c_str(), "%u,%u,%u", &rows, &blocks, &tpr);
      if (n == 2 && std::sscanf(mv.c_str(), "%u,%u,%2s", &rows, &blocks, sg) == 3 && std::string(sg) == "sg")
        tpr = info.subgroup_size, n = 3;
      const bool tpr_ok = n == 2 || (tpr >= 1 && tpr <= 256 && (tpr & (tpr - 1)) == 0);
      ELM_CHECK(n >= 2 && rows >= 1 && rows <= 8 && blocks >= 1 && blocks <= 64 && tpr_ok,
                "ELM_VULKAN_MATVEC must be \"rows,blocks[,tpr]\" (rows 1..8, blocks 1..64, tpr a power of two up to 256 "
                "or sg), not '", mv, "'");
      t.matvec_rows = rows, t.matvec_blocks = blocks, t.matvec_tpr = n == 3 ? tpr : 0;
    }
    const char* env_as = std::getenv("ELM_VULKAN_ATTN_SPLIT");
    if (o.attn_split >= 0) {
      t.attn_split = uint32_t(o.attn_split);
    } else if (env_as) {
      char* end = nullptr;
      const unsigned long v = std::strtoul(env_as, &end, 10);
      ELM_CHECK(end != env_as && *end == 0 && v <= (1u << 20), "ELM_VULKAN_ATTN_SPLIT must be a number of cache slots, not '",
                env_as, "'");
      t.attn_split = uint32_t(v);
    }
    if (const char* env_wg = std::getenv("ELM_VULKAN_MATVEC_WG")) {
      const unsigned long wg = std::strtoul(env_wg, nullptr, 10);
      ELM_CHECK(wg >= 32 && wg <= info.max_workgroup_size && (wg & (wg - 1)) == 0,
                "ELM_VULKAN_MATVEC_WG must be a power of two from 32 to ", info.max_workgroup_size, ", not '", env_wg,
                "'");
      t.matvec_wg = uint32_t(wg);
    }
    sh_->weight_pool = std::make_unique<Pool>(sh_->ctx, MemKind::Device);
    sh_->state_pool = std::make_unique<Pool>(sh_->ctx, MemKind::Device);
  }

  std::string name() const override { return "vulkan"; }

  bool supports(const Graph& g, const WeightStore& w, int32_t node) const override {
    return unsupported_reason(g, w, node, config_, sh_->tuning).empty();
  }

  std::unique_ptr<Segment> prepare(const SegmentSpec& spec) override {
    if (spec.artifact.empty()) return std::make_unique<VulkanSegment>(sh_, spec, nullptr);
    const ShaderSet shaders = read_artifact(spec.artifact);
    return std::make_unique<VulkanSegment>(sh_, spec, &shaders);
  }

  // The SPIR-V of every shader the segment's kernels use, both variants of those with a subgroup one.
  std::vector<uint8_t> compile(const SegmentSpec& spec) override {
    const Program p = build_program(spec, sh_->tuning);
    ShaderSet set;
    const auto add = [&](const std::string& name) {
      const std::span<const uint32_t> code = builtin_shader(name);
      ELM_CHECK(!code.empty(), "Vulkan: shader '", name, "' is missing from this build");
      set[name].assign(code.begin(), code.end());
    };
    for (const auto* list : {&p.small, &p.large})
      for (const Kernel& k : *list) {
        add(k.shader);
        if (k.reduces) add(k.shader + "_sg");
      }
    if (!p.states.empty()) add("kv_truncate");
    if (!spec.outputs.empty()) add("argmax");  // greedy steps (VulkanSegment::run_argmax)
    return write_artifact(set);
  }

  bool accepts_artifact(std::span<const uint8_t> artifact) const override {
    try {
      read_artifact(artifact);
      return true;
    } catch (const Error&) {
      return false;
    }
  }

  std::string description() const {
    const DeviceInfo& i = sh_->ctx->info();
    const char* type = i.type == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU     ? "discrete GPU"
                       : i.type == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ? "integrated GPU"
                       : i.type == VK_PHYSICAL_DEVICE_TYPE_CPU            ? "CPU"
                                                                          : "other";
    return cat(i.name, " (", type, ", subgroups ", sh_->subgroups ? std::to_string(i.subgroup_size) : "off",
               sh_->tuning.matvec_legacy ? ", legacy matvec rows " : ", gemv rows ", sh_->tuning.matvec_rows,
               sh_->tuning.matvec_legacy ? " blocks " : " chunks ", sh_->tuning.matvec_blocks,
               sh_->tuning.matvec_tpr ? cat(" tpr ", sh_->tuning.matvec_tpr) : "",
               sh_->tuning.matvec_int8 ? ", int8 x" : i.integer_dot_product ? ", float x" : "",
               i.integer_dot_product && !i.integer_dot_product_fast ? " (dot products not accelerated)" : "", ")");
  }

 private:
  RuntimeConfig config_;
  std::shared_ptr<Shared> sh_;
};

}  // namespace

std::unique_ptr<Backend> make_vulkan_backend(const RuntimeConfig& config, const VulkanOptions& options) {
  return std::make_unique<VulkanBackend>(config, options);
}

std::string vulkan_device_description(const Backend& backend) {
  const auto* vb = dynamic_cast<const VulkanBackend*>(&backend);
  return vb ? vb->description() : "";
}

}  // namespace elm
