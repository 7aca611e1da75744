// libFuzzer target: the GGUF reader and the importer (metadata -> config, tensor directory -> elm
// formats, graph building, block repacking) on arbitrary bytes. Anything but elm::Error is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "format/gguf_import.h"
#include "runtime/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    elm::GgufImport imp = elm::GgufImport::from(elm::GgufFile::parse(data, size, "fuzz"));
    imp.model(/*with_data=*/true);
  } catch (const elm::Error&) {
  }
  return 0;
}
