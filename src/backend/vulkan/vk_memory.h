// Device memory for the Vulkan backend: pools that hand out ranges of a few large buffers (drivers
// limit the number of allocations, and a descriptor may point at any range), and uploads through a
// staging buffer when the destination is not host-visible.
#pragma once
#include <memory>
#include <vector>

#include "backend/vulkan/vk_context.h"
#include "core/dtype.h"

namespace elm::vk {

// A range of a buffer. `host` points at it when the memory is mapped.
struct Slice {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceSize offset = 0, size = 0;
  uint8_t* host = nullptr;
  explicit operator bool() const { return buffer != VK_NULL_HANDLE; }
};

enum class MemKind {
  Device,    // device-local (mapped too on unified-memory devices)
  Upload,    // host-visible and coherent, written by the host
  Readback,  // host-visible, coherent, cached when possible, read by the host
};

class Pool {
 public:
  // Blocks start at first_block bytes and double up to max_block (a larger request gets its own).
  Pool(std::shared_ptr<Context> ctx, MemKind kind, VkDeviceSize first_block = VkDeviceSize(4) << 20,
       VkDeviceSize max_block = VkDeviceSize(256) << 20);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // A new range of `bytes` (rounded up), aligned for storage-buffer descriptors. Throws elm::Error when
  // the device is out of memory.
  Slice alloc(VkDeviceSize bytes);
  size_t bytes() const { return bytes_; }

 private:
  struct Block {
    VkBuffer buffer = VK_NULL_HANDLE;
    VkDeviceMemory memory = VK_NULL_HANDLE;
    VkDeviceSize size = 0, used = 0;
    uint8_t* host = nullptr;
  };
  Block new_block(VkDeviceSize size);

  std::shared_ptr<Context> ctx_;
  MemKind kind_;
  VkDeviceSize next_block_, max_block_;
  std::vector<Block> blocks_;
  size_t bytes_ = 0;
};

// Copies bytes to slices: a memcpy when the slice is mapped, else through a staging buffer whose copies
// are submitted together once it is full or at flush().
class Uploader {
 public:
  explicit Uploader(std::shared_ptr<Context> ctx, size_t staging_bytes = size_t(64) << 20);
  void put(const Slice& dst, const void* src, size_t n);
  void flush();

 private:
  std::shared_ptr<Context> ctx_;
  size_t cap_;
  std::unique_ptr<Pool> pool_;
  Slice stage_;
  size_t used_ = 0;
  std::vector<std::pair<VkBuffer, VkBufferCopy>> copies_;
};
// Fills a slice with a 32-bit pattern (size a multiple of 4).
void fill(Context& ctx, const Slice& dst, uint32_t value);

}  // namespace elm::vk
