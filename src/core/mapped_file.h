// Read-only memory mapping of a whole file: the weights of every model are used in place from it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace elm {

class MappedFile {
 public:
  // Throws elm::Error with the path and the OS reason when the file cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the mapping's pages from this process's resident set (they stay in the page cache and
  // fault back in when read again: the mapping is read-only, so nothing is lost). For callers that
  // have copied what they need out of the file, e.g. after an in-memory quantization.
  void release_pages() const;
  // The same for the whole pages inside [data, data + bytes) when that range lies in this mapping;
  // returns whether it did.
  bool release_pages(const void* data, size_t bytes) const;

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

std::string read_text_file(const std::string& path);

// Asks the kernel to reclaim the whole pages inside [data, data + bytes) (MADV_PAGEOUT): for a
// backend that copied a weight elsewhere and will not read the host copy again. It never loses data
// (file pages are re-read on a later access, anonymous pages swapped or kept), so it is safe whoever
// else still reads the tensor. A no-op where the kernel lacks MADV_PAGEOUT.
void page_out(const void* data, size_t bytes);
// Maps the whole pages inside [data, data + bytes) in one call (MADV_POPULATE_READ) rather than one
// page fault per 4 KiB, for a range about to be read end to end. A no-op where unsupported.
void populate_read(const void* data, size_t bytes);
// Faults in the whole pages inside the range for writing in one call (MADV_POPULATE_WRITE): a fresh
// buffer about to be filled end to end. A no-op where unsupported.
void populate_write(void* data, size_t bytes);

}  // namespace elm
