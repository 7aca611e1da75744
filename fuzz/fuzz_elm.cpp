// libFuzzer target: the .elm container, tensor table, graph, metadata and compiled-plan readers on
// arbitrary bytes, checksums off so that mutations reach the structural checks. Anything but
// elm::Error is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "format/elm_file.h"
#include "runtime/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const elm::ElmFile f = elm::ElmFile::parse(data, size, "fuzz", elm::Verify::None);
    elm::model_from_elm(f);
  } catch (const elm::Error&) {
  }
  return 0;
}
