#include "backend/vulkan/vk_segment.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <regex>
#include <set>

#include "backend/vulkan/vk_shaders.h"

namespace elm::vk {

namespace {
constexpr size_t kMaxCachedCommandBuffers = 32;  // step shapes x context runs (attn_split)
constexpr int kCacheResourceBase = 1 << 24;  // hazard ids of caches: base + 3 * state + {0, 1, 2}
constexpr int kAttnScratchResource = kCacheResourceBase - 1;  // split attention's scratch (one buffer)
}  // namespace

VulkanSegment::VulkanSegment(std::shared_ptr<Shared> shared, const SegmentSpec& spec, const ShaderSet* artifact)
    : sh_(std::move(shared)), ctx_(*sh_->ctx), spec_(spec) {
  ELM_CHECK(spec.config.max_batch > 0 && spec.config.max_seqs > 0, "invalid runtime configuration");
  spec_.artifact = {};  // not kept: the bytes belong to the model
  prog_ = build_program(spec_, sh_->tuning);
  device_pool_ = std::make_unique<Pool>(sh_->ctx, MemKind::Device, VkDeviceSize(1) << 20);
  upload_pool_ = std::make_unique<Pool>(sh_->ctx, MemKind::Upload, VkDeviceSize(1) << 20);
  readback_pool_ = std::make_unique<Pool>(sh_->ctx, MemKind::Readback, VkDeviceSize(1) << 20);

  const uint32_t mb = uint32_t(spec_.config.max_batch);
  step_host_ = upload_pool_->alloc(VkDeviceSize(16) * mb);
  step_dev_ = device_pool_->alloc(VkDeviceSize(16) * mb);
  dummy_ = device_pool_->alloc(256);
  assign_slots();
  const Graph& g = *spec_.graph;
  for (int32_t v : spec_.inputs)
    staging_[v] = upload_pool_->alloc(VkDeviceSize(mb) * VkDeviceSize(g.nodes[size_t(v)].cols) * 4);
  for (int32_t v : spec_.outputs)
    readback_[v] = readback_pool_->alloc(VkDeviceSize(mb) * VkDeviceSize(g.nodes[size_t(v)].cols) * 4);
  ids_dev_ = device_pool_->alloc(VkDeviceSize(4) * mb);
  if (prog_.attn_counters) {  // split decode attention (attention.comp): counters start at zero
    attn_scratch_ = device_pool_->alloc(VkDeviceSize(4) * prog_.attn_scratch_floats);
    attn_count_ = device_pool_->alloc(VkDeviceSize(4) * prog_.attn_counters);
    fill(ctx_, attn_count_, 0);
  }
  ids_host_ = readback_pool_->alloc(VkDeviceSize(4) * mb);
  upload_weights();
  make_states();

  VkDevice dev = ctx_.device();
  const uint32_t n_sets =
      uint32_t(prog_.small.size() + prog_.large.size() + prog_.states.size() + spec_.outputs.size());
  VkDescriptorPoolSize ps{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, n_sets * kBindingCount};
  VkDescriptorPoolCreateInfo dpi{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  dpi.maxSets = n_sets;
  dpi.poolSizeCount = 1;
  dpi.pPoolSizes = &ps;
  ELM_VK(vkCreateDescriptorPool(dev, &dpi, nullptr, &desc_pool_));
  small_ = compile(prog_.small, artifact);
  large_ = compile(prog_.large, artifact);

  // The truncation kernel, one descriptor set per state.
  Kernel trunc;
  trunc.shader = "kv_truncate";
  trunc.spec = {64};
  for (int64_t s : prog_.states) {
    trunc.bind.fill(Ref{});
    trunc.bind[kBindPos] = {Ref::PosCache, int32_t(s)};
    std::vector<Kernel> one{trunc};
    std::vector<Compiled> c = compile(one, artifact);
    truncate_pipeline_ = c[0].pipeline;
    truncate_sets_[s] = c[0].set;
  }

  // The argmax kernel, one descriptor set per output value.
  Kernel am;
  am.shader = "argmax";
  am.spec = {256};
  for (int32_t v : spec_.outputs) {
    am.bind.fill(Ref{});
    am.bind[kBindX] = {Ref::Value, v};
    am.bind[kBindY] = {Ref::Ids, 0};
    std::vector<Kernel> one{am};
    std::vector<Compiled> c = compile(one, artifact);
    argmax_pipeline_ = c[0].pipeline;
    argmax_sets_[v] = c[0].set;
  }

  VkCommandPoolCreateInfo cpi{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  cpi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  cpi.queueFamilyIndex = ctx_.queue_family();
  ELM_VK(vkCreateCommandPool(dev, &cpi, nullptr, &cmd_pool_));
  VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  ELM_VK(vkCreateFence(dev, &fci, nullptr, &fence_));

  const char* prof = std::getenv("ELM_VULKAN_PROFILE");
  if (prof && std::strcmp(prof, "0") != 0 && ctx_.info().timestamp_period > 0) {
    prof_ = std::make_unique<Profile>();
    prof_->queries = uint32_t(std::max(prog_.small.size(), prog_.large.size()) + 1);
    VkQueryPoolCreateInfo qi{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
    qi.queryType = VK_QUERY_TYPE_TIMESTAMP;
    qi.queryCount = prof_->queries;
    ELM_VK(vkCreateQueryPool(dev, &qi, nullptr, &prof_->pool));
  }
}

VulkanSegment::~VulkanSegment() {
  VkDevice dev = ctx_.device();
  if (prof_) {
    print_profile();
    vkDestroyQueryPool(dev, prof_->pool, nullptr);
  }
  if (fence_) vkDestroyFence(dev, fence_, nullptr);
  if (cmd_pool_) vkDestroyCommandPool(dev, cmd_pool_, nullptr);
  if (desc_pool_) vkDestroyDescriptorPool(dev, desc_pool_, nullptr);
}

// Every value gets a device buffer for the step's largest shape. Two values share one when their
// lifetimes (first write to last read, over both kernel lists) are disjoint.
void VulkanSegment::assign_slots() {
  const Graph& g = *spec_.graph;
  std::map<int32_t, std::pair<int, int>> life;  // value -> (first write, last read)
  const auto touch = [&](int32_t v, int def, int use) {
    auto [it, fresh] = life.emplace(v, std::make_pair(def, use));
    if (!fresh) it->second = {std::min(it->second.first, def), std::max(it->second.second, use)};
  };
  for (const auto* list : {&prog_.small, &prog_.large}) {
    for (const Kernel& k : *list) {
      for (const Ref& r : k.writes)
        if (r.kind == Ref::Value) touch(r.id, k.pos, k.pos);
      for (const Ref& r : k.reads)
        if (r.kind == Ref::Value) touch(r.id, INT_MAX, k.pos);
    }
  }
  for (int32_t v : spec_.inputs) touch(v, -1, -1);
  for (int32_t v : spec_.outputs) touch(v, INT_MAX, INT_MAX);

  std::vector<std::pair<int, int32_t>> order;  // (first write, value)
  for (auto& [v, l] : life) {
    ELM_CHECK(l.first != INT_MAX, "Vulkan: value of node ", v, " is read but never computed");
    l.second = std::max(l.second, l.first);
    order.push_back({l.first, v});
  }
  std::sort(order.begin(), order.end());
  std::vector<size_t> slot_bytes;
  std::vector<int> slot_free_after;  // last read of the slot's current value
  const size_t mb = size_t(spec_.config.max_batch);
  for (const auto& [def, v] : order) {
    const size_t need = mb * size_t(g.nodes[size_t(v)].cols) * 4;
    int best = -1;
    for (size_t s = 0; s < slot_bytes.size(); ++s) {
      if (slot_free_after[s] >= def) continue;
      // Prefer the smallest free slot that is big enough, else the biggest free one (it grows).
      const bool fits = slot_bytes[s] >= need;
      if (best < 0) {
        best = int(s);
        continue;
      }
      const bool best_fits = slot_bytes[size_t(best)] >= need;
      if ((fits && (!best_fits || slot_bytes[s] < slot_bytes[size_t(best)])) ||
          (!fits && !best_fits && slot_bytes[s] > slot_bytes[size_t(best)]))
        best = int(s);
    }
    if (best < 0) {
      best = int(slot_bytes.size());
      slot_bytes.push_back(0);
      slot_free_after.push_back(0);
    }
    slot_bytes[size_t(best)] = std::max(slot_bytes[size_t(best)], need);
    slot_free_after[size_t(best)] = life[v].second;
    slot_of_[v] = best;
  }
  for (size_t b : slot_bytes) {
    ELM_CHECK(b <= sh_->tuning.max_range, "Vulkan: an activation of ", b, " bytes exceeds the device's binding limit");
    slots_.push_back(device_pool_->alloc(b));
  }
}

void VulkanSegment::upload_weights() {
  Uploader up(sh_->ctx);
  std::vector<uint8_t> scratch;
  for (const DeviceWeight& d : prog_.weights) {
    const std::string key = d.key();
    if (sh_->weights.count(key)) continue;
    ELM_CHECK(d.bytes <= sh_->tuning.max_range, "Vulkan: weight '", key, "' exceeds the device's binding limit");
    const std::span<const uint8_t> bytes = weight_bytes(*spec_.weights, d, scratch);
    Slice s = sh_->weight_pool->alloc(bytes.size());
    up.put(s, bytes.data(), bytes.size());
    if (!scratch.empty()) up.flush();  // the scratch buffer is reused by the next weight
    sh_->weights[key] = s;
  }
  up.flush();
}

void VulkanSegment::make_states() {
  const Graph& g = *spec_.graph;
  for (int64_t s : prog_.states) {
    auto it = sh_->states.find(s);
    if (it == sh_->states.end()) {
      auto st = std::make_shared<KvState>();
      st->geo = kv_geometry(g, s, spec_.config);
      const size_t rows = size_t(spec_.config.max_seqs) * size_t(st->geo.kv_heads) * size_t(st->geo.cap);
      st->k = sh_->state_pool->alloc(rows * size_t(st->geo.head_dim) * st->geo.entry_bytes());
      st->v = sh_->state_pool->alloc(rows * size_t(st->geo.v_head_dim) * st->geo.entry_bytes());
      st->pos = sh_->state_pool->alloc(size_t(spec_.config.max_seqs) * size_t(st->geo.cap) * 4);
      st->bytes = size_t(st->k.size + st->v.size + st->pos.size);
      // Zero keys and values (never-written slots are multiplied by zero weights, which must not meet
      // NaN patterns), and no position in any slot.
      fill(ctx_, st->k, 0);
      fill(ctx_, st->v, 0);
      fill(ctx_, st->pos, 0xffffffffu);
      it = sh_->states.emplace(s, st).first;
      owned_states_.push_back(s);
    }
    states_.push_back(it->second);
  }
}

Slice VulkanSegment::slice_of(const Ref& r) const {
  switch (r.kind) {
    case Ref::None: return dummy_;
    case Ref::Value: return slots_[size_t(slot_of_.at(r.id))];
    case Ref::Weight: return sh_->weights.at(prog_.weights[size_t(r.id)].key());
    case Ref::Step: return step_dev_;
    case Ref::KCache: return sh_->states.at(r.id)->k;
    case Ref::VCache: return sh_->states.at(r.id)->v;
    case Ref::PosCache: return sh_->states.at(r.id)->pos;
    case Ref::Ids: return ids_dev_;
    case Ref::AttnScratch: return attn_scratch_;
    case Ref::AttnCount: return attn_count_;
  }
  return dummy_;
}

int VulkanSegment::resource(const Ref& r) const {
  switch (r.kind) {
    case Ref::Value: return slot_of_.at(r.id);
    case Ref::KCache: return kCacheResourceBase + 3 * r.id;
    case Ref::VCache: return kCacheResourceBase + 3 * r.id + 1;
    case Ref::PosCache: return kCacheResourceBase + 3 * r.id + 2;
    case Ref::AttnScratch: return kAttnScratchResource;
    default: return -1;
  }
}

std::vector<VulkanSegment::Compiled> VulkanSegment::compile(const std::vector<Kernel>& list, const ShaderSet* artifact) {
  VkDevice dev = ctx_.device();
  std::vector<Compiled> out;
  for (const Kernel& k : list) {
    Compiled c;
    const std::string name = k.shader + (k.reduces && sh_->subgroups ? "_sg" : "");
    std::span<const uint32_t> code;
    if (artifact) {
      auto it = artifact->find(name);
      if (it != artifact->end()) code = it->second;
    }
    if (code.empty()) code = builtin_shader(name);
    ELM_CHECK(!code.empty(), "Vulkan: shader '", name, "' is missing from this build");
    c.pipeline = ctx_.pipeline(code, k.spec);

    VkDescriptorSetLayout layout = ctx_.set_layout();
    VkDescriptorSetAllocateInfo ai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    ai.descriptorPool = desc_pool_;
    ai.descriptorSetCount = 1;
    ai.pSetLayouts = &layout;
    ELM_VK(vkAllocateDescriptorSets(dev, &ai, &c.set));
    std::array<VkDescriptorBufferInfo, kBindingCount> infos;
    std::array<VkWriteDescriptorSet, kBindingCount> writes;
    for (uint32_t b = 0; b < kBindingCount; ++b) {
      const Slice s = slice_of(k.bind[b]);
      infos[b] = {s.buffer, s.offset, s.size};
      writes[b] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
      writes[b].dstSet = c.set;
      writes[b].dstBinding = b;
      writes[b].descriptorCount = 1;
      writes[b].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      writes[b].pBufferInfo = &infos[b];
    }
    vkUpdateDescriptorSets(dev, kBindingCount, writes.data(), 0, nullptr);
    for (const Ref& r : k.reads)
      if (resource(r) >= 0) c.reads.push_back(resource(r));
    for (const Ref& r : k.writes)
      if (resource(r) >= 0) c.writes.push_back(resource(r));
    out.push_back(std::move(c));
  }
  return out;
}

uint32_t VulkanSegment::rows(int32_t node, const StepDims& d) const {
  return spec_.graph->nodes[size_t(node)].rows == kRowsOut ? d.n_out : d.T;
}

void VulkanSegment::record(VkCommandBuffer cb, const StepDims& d, int32_t argmax) {
  const Graph& g = *spec_.graph;
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  ELM_VK(vkBeginCommandBuffer(cb, &bi));
  // The previous step's writes (kv caches) are complete: make them visible.
  barrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
          VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
          VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
          VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
              VK_ACCESS_TRANSFER_WRITE_BIT);
  // The step (tokens, positions, sequences, output rows) and the boundary inputs.
  VkBufferCopy step{step_host_.offset, step_dev_.offset, step_host_.size};
  vkCmdCopyBuffer(cb, step_host_.buffer, step_dev_.buffer, 1, &step);
  for (const auto& [v, stage] : staging_) {
    const VkDeviceSize n = VkDeviceSize(rows(v, d)) * VkDeviceSize(g.nodes[size_t(v)].cols) * 4;
    const Slice dst = slots_[size_t(slot_of_.at(v))];
    VkBufferCopy c{stage.offset, dst.offset, n};
    if (n) vkCmdCopyBuffer(cb, stage.buffer, dst.buffer, 1, &c);
  }
  barrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
          VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);

  const bool small = d.T <= kSmallStep;
  const std::vector<Kernel>& kernels = small ? prog_.small : prog_.large;
  const std::vector<Compiled>& compiled = small ? small_ : large_;
  std::set<int> written, read;
  VkPipeline bound = VK_NULL_HANDLE;
  if (prof_) {
    vkCmdResetQueryPool(cb, prof_->pool, 0, prof_->queries);
    vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, prof_->pool, 0);
  }
  for (size_t i = 0; i < kernels.size(); ++i) {
    Launch l;
    kernels[i].launch(d, l);
    if (prof_ && (l.groups[0] == 0 || l.groups[1] == 0 || l.groups[2] == 0))
      vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, prof_->pool, uint32_t(i + 1));
    if (l.groups[0] == 0 || l.groups[1] == 0 || l.groups[2] == 0) continue;
    const Compiled& c = compiled[i];
    // A barrier only where this kernel reads or writes what an earlier one wrote since the last
    // barrier, or writes what one read (independent kernels, like q/k/v, run together).
    bool hazard = false;
    for (int r : c.reads) hazard |= written.count(r) != 0;
    for (int w : c.writes) hazard |= written.count(w) != 0 || read.count(w) != 0;
    if (hazard) {
      barrier(cb);
      written.clear(), read.clear();
    }
    written.insert(c.writes.begin(), c.writes.end());
    read.insert(c.reads.begin(), c.reads.end());
    if (c.pipeline != bound) vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, c.pipeline), bound = c.pipeline;
    vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, ctx_.pipeline_layout(), 0, 1, &c.set, 0, nullptr);
    vkCmdPushConstants(cb, ctx_.pipeline_layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, kPushBytes, l.push.data());
    vkCmdDispatch(cb, l.groups[0], l.groups[1], l.groups[2]);
    if (prof_) vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, prof_->pool, uint32_t(i + 1));
  }

  if (argmax >= 0 && rows(argmax, d) > 0) {  // one workgroup a row of the logits
    barrier(cb);
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, argmax_pipeline_);
    vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, ctx_.pipeline_layout(), 0, 1,
                            &argmax_sets_.at(argmax), 0, nullptr);
    const uint32_t C = uint32_t(g.nodes[size_t(argmax)].cols);
    vkCmdPushConstants(cb, ctx_.pipeline_layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(C), &C);
    vkCmdDispatch(cb, rows(argmax, d), 1, 1);
  }
  barrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
          VK_ACCESS_TRANSFER_READ_BIT);
  for (const auto& [v, back] : readback_) {
    if (v == argmax) {  // its ids instead of its rows
      VkBufferCopy c{ids_dev_.offset, ids_host_.offset, VkDeviceSize(rows(v, d)) * 4};
      if (c.size) vkCmdCopyBuffer(cb, ids_dev_.buffer, ids_host_.buffer, 1, &c);
      continue;
    }
    const VkDeviceSize n = VkDeviceSize(rows(v, d)) * VkDeviceSize(g.nodes[size_t(v)].cols) * 4;
    const Slice src = slots_[size_t(slot_of_.at(v))];
    VkBufferCopy c{src.offset, back.offset, n};
    if (n) vkCmdCopyBuffer(cb, src.buffer, back.buffer, 1, &c);
  }
  barrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
          VK_ACCESS_HOST_READ_BIT);
  ELM_VK(vkEndCommandBuffer(cb));
}

VkCommandBuffer VulkanSegment::command_buffer(const StepDims& d, int32_t argmax) {
  const CmdKey key{d.T, d.n_out, d.ctx, argmax};
  auto it = cmds_.find(key);
  if (it != cmds_.end()) return it->second;
  VkCommandBuffer cb = VK_NULL_HANDLE;
  if (cmds_.size() >= kMaxCachedCommandBuffers) {
    const auto old = cmd_order_.front();
    cmd_order_.pop_front();
    cb = cmds_.at(old);
    cmds_.erase(old);
    ELM_VK(vkResetCommandBuffer(cb, 0));
  } else {
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = cmd_pool_;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    ELM_VK(vkAllocateCommandBuffers(ctx_.device(), &ai, &cb));
  }
  record(cb, d, argmax);
  cmds_[key] = cb;
  cmd_order_.push_back(key);
  return cb;
}

void VulkanSegment::run(const Batch& b, BoundaryValues& io) { run_step(b, io, -1); }

bool VulkanSegment::run_argmax(const Batch& b, BoundaryValues& io, int32_t logits, std::vector<int32_t>& ids) {
  if (!readback_.count(logits)) return false;
  const StepDims d = run_step(b, io, logits);
  const auto* host = reinterpret_cast<const int32_t*>(ids_host_.host);
  ids.assign(host, host + rows(logits, d));
  return true;
}

StepDims VulkanSegment::run_step(const Batch& b, BoundaryValues& io, int32_t argmax) {
  const Graph& g = *spec_.graph;
  const int64_t T = b.size(), mb = spec_.config.max_batch;
  ELM_CHECK(T > 0 && T <= mb, "batch of ", T, " tokens (at most ", mb, ")");
  ELM_CHECK(b.positions.size() == size_t(T) && b.seqs.size() == size_t(T) && b.want_output.size() == size_t(T),
            "malformed batch");
  auto* step = reinterpret_cast<int32_t*>(step_host_.host);
  out_rows_.clear();
  for (int64_t t = 0; t < T; ++t) {
    const int32_t seq = b.seqs[size_t(t)], pos = b.positions[size_t(t)];
    ELM_CHECK(seq >= 0 && seq < spec_.config.max_seqs, "sequence ", seq, " is out of range");
    ELM_CHECK(pos >= 0 && pos < spec_.config.n_ctx, "position ", pos, " is beyond the context (", spec_.config.n_ctx,
              ")");
    step[t] = b.tokens[size_t(t)];
    step[mb + t] = pos;
    step[2 * mb + t] = seq;
    if (b.want_output[size_t(t)]) out_rows_.push_back(int32_t(t));
  }
  for (size_t r = 0; r < out_rows_.size(); ++r) step[3 * mb + int64_t(r)] = out_rows_[r];
  for (int32_t e : prog_.embeds) {
    const int64_t V = spec_.weights->get(g.nodes[size_t(g.nodes[size_t(e)].inputs[0])].name).rows();
    for (int64_t t = 0; t < T; ++t)
      ELM_CHECK(b.tokens[size_t(t)] >= 0 && b.tokens[size_t(t)] < V, "token id ", b.tokens[size_t(t)],
                " is outside the vocabulary (", V, " tokens)");
  }
  StepDims d{uint32_t(T), uint32_t(out_rows_.size()), uint32_t(mb)};
  const uint32_t split = sh_->tuning.attn_split;
  if (split && T <= kSmallStep) {  // decode steps: one command buffer per run of context
    const int32_t last = *std::max_element(b.positions.begin(), b.positions.end());
    d.ctx = (uint32_t(last) / split + 1) * split;
  }
  for (const auto& [v, stage] : staging_) {
    const HostTensor& h = io.at(v);
    const int64_t r = rows(v, d), c = g.nodes[size_t(v)].cols;
    ELM_CHECK(h.rows == r && h.cols == c && h.data.size() == size_t(r * c), "Vulkan: boundary value of node ", v,
              " is [", h.rows, ", ", h.cols, "], expected [", r, ", ", c, "]");
    std::memcpy(stage.host, h.data.data(), size_t(r * c) * 4);
  }
  VkCommandBuffer cb = command_buffer(d, argmax);
  const auto t0 = std::chrono::steady_clock::now();
  ctx_.submit_wait(cb, fence_);
  if (prof_) profile_step(d, std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count());
  for (const auto& [v, back] : readback_) {
    if (v == argmax) continue;  // the caller takes its ids (run_argmax)
    HostTensor& h = io[v];
    h.resize(rows(v, d), g.nodes[size_t(v)].cols);
    std::memcpy(h.data.data(), back.host, h.data.size() * 4);
  }
  return d;
}

void VulkanSegment::seq_truncate(int seq, int32_t n_past) {
  ELM_CHECK(seq >= 0 && seq < spec_.config.max_seqs, "sequence ", seq, " is out of range");
  if (states_.empty()) return;
  ctx_.run_once([&](VkCommandBuffer cb) {
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, truncate_pipeline_);
    for (const auto& [s, set] : truncate_sets_) {
      const uint32_t cap = uint32_t(sh_->states.at(s)->geo.cap);
      const uint32_t push[3] = {cap, uint32_t(seq), uint32_t(n_past)};
      vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, ctx_.pipeline_layout(), 0, 1, &set, 0, nullptr);
      vkCmdPushConstants(cb, ctx_.pipeline_layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(push), push);
      vkCmdDispatch(cb, (cap + 63) / 64, 1, 1);
    }
  });
}

void VulkanSegment::profile_step(const StepDims& d, double wall_ns) {
  const bool small = d.T <= kSmallStep;
  const std::vector<Kernel>& kernels = small ? prog_.small : prog_.large;
  std::vector<uint64_t> ts(kernels.size() + 1);
  ELM_VK(vkGetQueryPoolResults(ctx_.device(), prof_->pool, 0, uint32_t(ts.size()), ts.size() * 8, ts.data(), 8,
                               VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
  const double period = ctx_.info().timestamp_period;
  static const std::regex layer("(^|\\+)l[0-9]+\\.");
  auto& entries = small ? prof_->small : prof_->large;
  for (size_t i = 0; i < kernels.size(); ++i) {
    Profile::Entry& e = entries[kernels[i].shader + " " + std::regex_replace(kernels[i].label, layer, "$1")];
    e.ns += double(ts[i + 1] - ts[i]) * period;
    e.launches += 1;
  }
  (small ? prof_->small_steps : prof_->large_steps) += 1;
  (small ? prof_->small_wall_ns : prof_->large_wall_ns) += wall_ns;
  (small ? prof_->small_gpu_ns : prof_->large_gpu_ns) += double(ts.back() - ts.front()) * period;
}

void VulkanSegment::print_profile() const {
  const auto dump = [](const char* what, const std::map<std::string, Profile::Entry>& entries, int64_t steps,
                       double wall, double gpu) {
    if (!steps) return;
    std::fprintf(stderr, "vulkan profile, %s: %lld steps, per step %.1f us on the GPU, %.1f us submit to fence\n", what,
                 (long long)steps, gpu / steps / 1e3, wall / steps / 1e3);
    std::vector<std::pair<double, std::string>> rows;
    for (const auto& [k, e] : entries) rows.push_back({e.ns, k});
    std::sort(rows.rbegin(), rows.rend());
    for (const auto& [ns, k] : rows)
      std::fprintf(stderr, "  %9.1f us/step %6.2f launches/step  %s\n", ns / steps / 1e3,
                   double(entries.at(k).launches) / double(steps), k.c_str());
  };
  dump("steps of <= 8 tokens", prof_->small, prof_->small_steps, prof_->small_wall_ns, prof_->small_gpu_ns);
  dump("larger steps", prof_->large, prof_->large_steps, prof_->large_wall_ns, prof_->large_gpu_ns);
}

size_t VulkanSegment::state_bytes() const {
  size_t n = 0;
  for (int64_t s : owned_states_) n += sh_->states.at(s)->bytes;
  return n;
}

}  // namespace elm::vk
