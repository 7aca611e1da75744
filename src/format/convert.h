// elm convert: a Hugging Face directory or a GGUF file -> one .elm file. Weights are quantized under a
// QuantPolicy (src/quant/quantize.h) and streamed to the file one tensor at a time, so converting a
// model never holds more than its largest tensor in memory.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace elm {

inline constexpr const char* kSelfCalibration = "self";

struct ConvertOptions {
  // A QuantPolicy name (f32, bf16, f16, int8, int4, int4-g64, ...), or "keep": every tensor in the
  // format its source stores (GGUF Q8_0 / Q4_0 / Q4_1 stay 8- and 4-bit, losslessly). Empty: int4 for
  // Hugging Face checkpoints, keep for GGUF files (already quantized by their maker).
  std::string quant;
  // Calibration (quant/calibration.h): a text file the float model reads first, so 4-bit groups
  // minimize the error the model's activations feel rather than the plain weight error; "self": text
  // the float model samples itself (no data needed). Empty: none.
  std::string calib_file;
  int64_t calib_tokens = 16384;  // at most this many tokens of it, in chunks of 512
  bool calib_gptq = true;        // false: calibrated scale search only (no GPTQ rounding)
  int threads = 0;               // for the calibration pass
  // A self-draft to slice into the file (graph/submodel.h spec, e.g. "layers=0-3;ffn=0.5"): its
  // narrowed tensors are cut from the converted ones and stored, its graph goes into the metadata, and
  // `--self-draft` with no value uses it. Empty: none.
  std::string self_draft;
  std::function<void(int64_t done, int64_t total)> calib_progress;
  // Called after each tensor with the source bytes done so far, their total, and the tensor's name.
  std::function<void(uint64_t done, uint64_t total, const std::string& tensor)> progress;
};

struct ConvertResult {
  std::string quant;           // the policy applied
  std::string source_format;   // "hf" or "gguf"
  size_t tensors = 0;
  uint64_t source_bytes = 0;   // weights as the source stores them
  uint64_t weight_bytes = 0;   // weights in the .elm file
  uint64_t file_bytes = 0;
  int64_t calib_tokens = 0;    // tokens the calibration statistics came from (0: none)
};

// Throws elm::Error for unreadable input, unknown policies and write failures; the output file only
// appears when the conversion succeeded.
ConvertResult convert_to_elm(const std::string& input, const std::string& output, const ConvertOptions& options = {});

}  // namespace elm
