// libFuzzer target: the safetensors header parser on arbitrary bytes. Anything but elm::Error is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "format/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    elm::SafetensorsFile f = elm::SafetensorsFile::parse(data, size, "fuzz");
    for (const auto& [name, v] : f.tensors()) (void)elm::tensor_nbytes(v.dtype, v.shape);
  } catch (const elm::Error&) {
  }
  return 0;
}
