// The .elm container (docs/format.md): a fixed header, a table of typed sections, and the sections
// themselves. This layer knows bytes, checksums and the tensor table; what the sections mean for a
// model (graph, metadata, tokenizer, compiled plans) is elm_file.cpp's business.
//
// Reading validates everything an untrusted file can get wrong before anything is used: sizes, offsets,
// alignment, overlaps, checksums, tensor shapes against their byte counts. Tensor data is never copied:
// views point into the mapping.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace elm {

constexpr uint16_t kElmVersionMajor = 1;  // readers reject other majors
constexpr uint16_t kElmVersionMinor = 0;  // newer minors only add optional sections
constexpr size_t kElmHeaderSize = 64;
constexpr size_t kElmSectionEntrySize = 48;
constexpr size_t kElmTensorRecordSize = 72;
constexpr size_t kElmTensorAlign = 64;  // every tensor (and every plane inside it) starts 64-byte aligned
constexpr size_t kElmPageAlign = 4096;  // weights and artifacts start on a page

enum class SectionKind : uint32_t {
  Meta = 1,             // JSON {"info": ModelInfo, "convert": {...}}
  Graph = 2,            // JSON, Graph::to_json
  Tensors = 3,          // binary tensor table
  Weights = 4,          // tensor bytes, used in place
  TokenizerJson = 5,    // tokenizer.json text
  TokenizerConfig = 6,  // tokenizer_config.json text
  TokenizerGguf = 7,    // JSON object: a GGUF file's tokenizer.* metadata
  ChatTemplate = 8,     // Jinja source
  CompiledPlan = 9,     // JSON {"backends", "node_backend", "artifacts": section index per segment}
  Artifact = 10,        // one backend's compiled bytes for one segment
};
const char* section_kind_name(uint32_t kind);

constexpr uint32_t kSectionOptional = 1;  // flag: a reader that does not know the kind may skip it

struct SectionEntry {
  uint32_t kind = 0;
  uint32_t flags = 0;
  uint64_t offset = 0;  // from the start of the file
  uint64_t size = 0;
  uint32_t align = 1;  // offset is a multiple of it (a power of two)
  uint32_t crc = 0;    // CRC-32C of the section's bytes
};

struct TensorEntry {
  std::string name;
  TensorView view;      // dtype, shape, group, scale dtype, nbytes; data into the mapping once read
  uint64_t offset = 0;  // from the start of the weights section
  uint32_t crc = 0;     // CRC-32C of the tensor's bytes
};

// How much of a file's checksums to verify while opening it.
enum class Verify {
  None,      // structure only: fuzzing, and tests that forge damaged files
  Metadata,  // every section the loader reads anyway; not weights or artifacts (used in place)
  All,       // every section (elm inspect verifies tensors one by one on top)
};

class ElmFile {
 public:
  // Throws elm::Error naming the file and what is wrong with it.
  static ElmFile open(const std::string& path, Verify verify = Verify::Metadata);
  // Reads an in-memory image; `bytes` must outlive the result.
  static ElmFile parse(const uint8_t* bytes, size_t size, const std::string& label, Verify verify);

  uint16_t version_major = 0, version_minor = 0;
  std::vector<SectionEntry> sections;
  std::vector<TensorEntry> tensors;  // the tensor table, views into the weights section
  std::shared_ptr<MappedFile> file;  // keeps the mapping alive (null after parse())

  const std::string& label() const { return label_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes(size_t section) const;
  std::string_view text(size_t section) const;
  int find(SectionKind kind) const;  // index of the first section of this kind, -1 when none
  bool section_ok(size_t section) const;  // its checksum matches
  bool tensor_ok(size_t tensor) const;

 private:
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::string label_;
};

// Writes a .elm file section by section. The file appears under its name only when finish()
// succeeds: it is written to "<path>.tmp" first and renamed.
class ElmWriter {
 public:
  explicit ElmWriter(const std::string& path);
  ~ElmWriter();  // removes the temporary file when finish() was not reached
  ElmWriter(const ElmWriter&) = delete;
  ElmWriter& operator=(const ElmWriter&) = delete;

  // Streaming: begin, write any number of pieces, end. Returns the section's index.
  size_t begin_section(SectionKind kind, uint32_t align = 64, uint32_t flags = 0);
  void write(const void* data, size_t n);
  void pad_to(size_t align);          // zeros up to the next multiple of align in the section
  uint64_t section_pos() const;       // bytes written into the current section
  void end_section();
  size_t add_section(SectionKind kind, std::span<const uint8_t> bytes, uint32_t align = 64, uint32_t flags = 0);
  size_t add_text(SectionKind kind, std::string_view text, uint32_t flags = 0);
  // Copies a section of another .elm file as it is (its checksum carried over after a check).
  size_t copy_section(const SectionEntry& e, std::span<const uint8_t> bytes);
  size_t section_count() const { return entries_.size(); }

  void finish();  // section table, header, rename into place
  uint64_t bytes_written() const { return pos_; }

 private:
  void raw_write(const void* data, size_t n);
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  uint64_t pos_ = 0;
  std::vector<SectionEntry> entries_;
  bool open_section_ = false;
  bool done_ = false;
};

// The tensor table's bytes (records, then the name pool) for these entries.
std::vector<uint8_t> encode_tensor_table(const std::vector<TensorEntry>& tensors);

// Recomputes the header, table and section checksums of a .elm image in place. Tests forge damaged
// files with it so that the structural checks behind the checksums get exercised too.
void reseal_elm_image(std::vector<uint8_t>& image);

}  // namespace elm
