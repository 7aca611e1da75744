#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace elm {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("cannot stat '", path, "': ", std::strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail("'", path, "' is a directory, expected a file");
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = size_t(st.st_size);
  if (f->size_ > 0) {
    void* p = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail("cannot map '", path, "': ", std::strerror(e));
    }
    f->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return f;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

void MappedFile::release_pages() const {
  if (data_) madvise(const_cast<uint8_t*>(data_), size_, MADV_DONTNEED);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '", path, "': ", std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

// madvise over the `page`-sized pages inside [data, data + bytes), or with `outward` over every page
// the range touches.
void advise_pages(const void* data, size_t bytes, size_t page, int advice, bool outward = false) {
  const uintptr_t round = outward ? page - 1 : 0;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1 - round) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes + round) / page * page;
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, advice);
}

}  // namespace

bool MappedFile::release_pages(const void* data, size_t bytes) const {
  const auto* p = static_cast<const uint8_t*>(data);
  if (!data_ || p < data_ || p + bytes > data_ + size_) return false;
  advise_pages(data, bytes, size_t(sysconf(_SC_PAGESIZE)), MADV_DONTNEED);
  return true;
}

void page_out(const void* data, size_t bytes) {
#ifdef MADV_PAGEOUT
  advise_pages(data, bytes, size_t(sysconf(_SC_PAGESIZE)), MADV_PAGEOUT);
#else
  (void)data, (void)bytes;
#endif
}

void populate_read(const void* data, size_t bytes) {
#ifdef MADV_POPULATE_READ
  // Outward to whole pages: populating a partly covered page is harmless.
  advise_pages(data, bytes, size_t(sysconf(_SC_PAGESIZE)), MADV_POPULATE_READ, /*outward=*/true);
#else
  (void)data, (void)bytes;
#endif
}

void populate_write(void* data, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  advise_pages(data, bytes, size_t(sysconf(_SC_PAGESIZE)), MADV_POPULATE_WRITE);
#else
  (void)data, (void)bytes;
#endif
}

}  // namespace elm
