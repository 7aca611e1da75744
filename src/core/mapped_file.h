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

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

std::string read_text_file(const std::string& path);

}  // namespace elm
