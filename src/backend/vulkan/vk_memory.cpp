#include "backend/vulkan/vk_memory.h"

#include <algorithm>
#include <cstring>

namespace elm::vk {

Pool::Pool(std::shared_ptr<Context> ctx, MemKind kind, VkDeviceSize first_block, VkDeviceSize max_block)
    : ctx_(std::move(ctx)), kind_(kind), next_block_(first_block), max_block_(max_block) {}

Pool::~Pool() {
  VkDevice dev = ctx_->device();
  for (Block& b : blocks_) {
    if (b.host) vkUnmapMemory(dev, b.memory);
    vkDestroyBuffer(dev, b.buffer, nullptr);
    vkFreeMemory(dev, b.memory, nullptr);
  }
}

Pool::Block Pool::new_block(VkDeviceSize size) {
  VkDevice dev = ctx_->device();
  Block b;
  b.size = size;
  VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bci.size = size;
  bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  ELM_VK(vkCreateBuffer(dev, &bci, nullptr, &b.buffer));
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(dev, b.buffer, &req);

  const VkMemoryPropertyFlags visible = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  int type = -1;
  bool map = true;
  switch (kind_) {
    case MemKind::Device:
      if (ctx_->info().unified_memory) type = ctx_->memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | visible);
      if (type < 0) type = ctx_->memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT), map = false;
      break;
    case MemKind::Upload:
      type = ctx_->memory_type(req.memoryTypeBits, visible);
      break;
    case MemKind::Readback:
      type = ctx_->memory_type(req.memoryTypeBits, visible, VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
      break;
  }
  if (type < 0) {
    vkDestroyBuffer(dev, b.buffer, nullptr);
    fail("Vulkan: no suitable memory type on ", ctx_->info().name);
  }
  VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  ai.allocationSize = req.size;
  ai.memoryTypeIndex = uint32_t(type);
  const VkResult r = vkAllocateMemory(dev, &ai, nullptr, &b.memory);
  if (r != VK_SUCCESS) {
    vkDestroyBuffer(dev, b.buffer, nullptr);
    fail("Vulkan: cannot allocate ", size >> 20, " MiB of ", kind_ == MemKind::Device ? "device" : "host-visible",
         " memory on ", ctx_->info().name, " (VkResult ", int(r), ")");
  }
  ELM_VK(vkBindBufferMemory(dev, b.buffer, b.memory, 0));
  if (map) {
    void* p = nullptr;
    ELM_VK(vkMapMemory(dev, b.memory, 0, VK_WHOLE_SIZE, 0, &p));
    b.host = static_cast<uint8_t*>(p);
  }
  bytes_ += size_t(size);
  return b;
}

Slice Pool::alloc(VkDeviceSize bytes) {
  // 256 covers every device's minStorageBufferOffsetAlignment in practice; checked anyway.
  const VkDeviceSize align = std::max<VkDeviceSize>(256, ctx_->info().min_storage_align);
  bytes = std::max<VkDeviceSize>(align_up(size_t(bytes), 16), 16);
  Block* b = nullptr;
  for (Block& cand : blocks_)
    if (align_up(size_t(cand.used), size_t(align)) + bytes <= cand.size) b = &cand;
  if (!b) {
    blocks_.push_back(new_block(std::max(next_block_, align_up(size_t(bytes), size_t(align)))));
    next_block_ = std::min(max_block_, 2 * next_block_);
    b = &blocks_.back();
  }
  Slice s;
  s.buffer = b->buffer;
  s.offset = align_up(size_t(b->used), size_t(align));
  s.size = bytes;
  s.host = b->host ? b->host + s.offset : nullptr;
  b->used = s.offset + bytes;
  return s;
}

Uploader::Uploader(std::shared_ptr<Context> ctx, size_t staging_bytes) : ctx_(std::move(ctx)), cap_(staging_bytes) {}

void Uploader::put(const Slice& dst, const void* src, size_t n) {
  ELM_CHECK(n <= dst.size, "Vulkan upload of ", n, " bytes into a range of ", dst.size);
  if (dst.host) {
    std::memcpy(dst.host, src, n);
    return;
  }
  if (!pool_) {
    pool_ = std::make_unique<Pool>(ctx_, MemKind::Upload, VkDeviceSize(cap_), VkDeviceSize(cap_));
    stage_ = pool_->alloc(cap_);
  }
  const auto* bytes = static_cast<const uint8_t*>(src);
  for (size_t off = 0; off < n;) {
    if (used_ == cap_) flush();
    const size_t len = std::min(n - off, cap_ - used_);
    std::memcpy(stage_.host + used_, bytes + off, len);
    copies_.push_back({dst.buffer, VkBufferCopy{stage_.offset + used_, dst.offset + off, len}});
    used_ += len, off += len;
  }
}

void Uploader::flush() {
  if (copies_.empty()) return;
  ctx_->run_once([&](VkCommandBuffer cb) {
    for (const auto& [buffer, c] : copies_) vkCmdCopyBuffer(cb, stage_.buffer, buffer, 1, &c);
  });
  copies_.clear();
  used_ = 0;
}

void fill(Context& ctx, const Slice& dst, uint32_t value) {
  if (dst.host) {
    auto* w = reinterpret_cast<uint32_t*>(dst.host);
    std::fill(w, w + dst.size / 4, value);
    return;
  }
  ctx.run_once([&](VkCommandBuffer cb) { vkCmdFillBuffer(cb, dst.buffer, dst.offset, dst.size, value); });
}

}  // namespace elm::vk
