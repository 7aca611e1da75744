// A fixed-size array of zeros that costs neither time nor resident memory until it is written.
//
// std::vector value-initializes: allocating a 100 MiB KV cache or the activation buffers of a long
// prompt batch means a memset that touches every page before the first token (a third of the time to
// first token of a 1.7B model). calloc of a large block maps fresh pages, which the kernel hands out
// zeroed on first touch, so only the part a request actually uses ever becomes resident.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>

namespace elm {

template <class T>
class ZeroedArray {
  static_assert(std::is_trivially_copyable_v<T>, "ZeroedArray holds plain values");

 public:
  ZeroedArray() = default;
  explicit ZeroedArray(size_t n) : p_(n ? static_cast<T*>(std::calloc(n, sizeof(T))) : nullptr), n_(n) {
    if (n && !p_) throw std::bad_alloc();
  }
  T* data() { return p_.get(); }
  const T* data() const { return p_.get(); }
  size_t size() const { return n_; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> p_;
  size_t n_ = 0;
};

}  // namespace elm
