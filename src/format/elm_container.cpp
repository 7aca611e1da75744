#include "format/elm_container.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "format/checksum.h"

namespace elm {

namespace {

constexpr char kMagic[8] = {'\x89', 'E', 'L', 'M', '\r', '\n', '\x1a', '\n'};
constexpr size_t kMaxSections = 1 << 16;
constexpr size_t kMaxTensors = 1 << 20;
constexpr size_t kMaxNameLen = 1024;
constexpr uint32_t kMaxAlign = 1 << 16;

// Header layout (little-endian, 64 bytes):
//   0 magic[8]  8 u16 major  10 u16 minor  12 u32 header_size  16 u64 file_size  24 u64 table_offset
//   32 u32 section_count  36 u32 entry_size  40 u32 table_crc  44 u32 flags  48 reserved[12]  60 u32 header_crc
// Section entry (48 bytes): 0 u32 kind  4 u32 flags  8 u64 offset  16 u64 size  24 u32 align  28 u32 crc
//   32 reserved[16]
// Tensor record (72 bytes): 0 u32 name_offset  4 u32 name_len  8 u8 dtype  9 u8 ndim  10 u8 scale_dtype
//   11 u8 reserved  12 u32 group  16 u64 dims[4]  48 u64 offset  56 u64 nbytes  64 u32 crc  68 u32 reserved

template <class T>
T get(const uint8_t* p, size_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof(T));
  return v;
}
template <class T>
void put(uint8_t* p, size_t off, T v) {
  std::memcpy(p + off, &v, sizeof(T));
}

bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

bool known_dtype(uint8_t d) {
  switch (DType(d)) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::I32:
    case DType::I8:
    case DType::Q8:
    case DType::Q4:
    case DType::Q4M: return true;
  }
  return false;
}

bool known_kind(uint32_t k) { return k >= uint32_t(SectionKind::Meta) && k <= uint32_t(SectionKind::Artifact); }

// Checksums the loader verifies: everything it parses, not what it maps and uses in place.
bool verified_at(Verify v, uint32_t kind) {
  if (v == Verify::All) return true;
  if (v == Verify::None) return false;
  return kind != uint32_t(SectionKind::Weights) && kind != uint32_t(SectionKind::Artifact);
}

void encode_header(uint8_t* h, uint64_t file_size, uint64_t table_offset, uint32_t count, uint32_t table_crc) {
  std::memset(h, 0, kElmHeaderSize);
  std::memcpy(h, kMagic, 8);
  put<uint16_t>(h, 8, kElmVersionMajor);
  put<uint16_t>(h, 10, kElmVersionMinor);
  put<uint32_t>(h, 12, uint32_t(kElmHeaderSize));
  put<uint64_t>(h, 16, file_size);
  put<uint64_t>(h, 24, table_offset);
  put<uint32_t>(h, 32, count);
  put<uint32_t>(h, 36, uint32_t(kElmSectionEntrySize));
  put<uint32_t>(h, 40, table_crc);
  put<uint32_t>(h, 60, crc32c(h, 60));
}

void encode_entry(uint8_t* p, const SectionEntry& e) {
  std::memset(p, 0, kElmSectionEntrySize);
  put<uint32_t>(p, 0, e.kind);
  put<uint32_t>(p, 4, e.flags);
  put<uint64_t>(p, 8, e.offset);
  put<uint64_t>(p, 16, e.size);
  put<uint32_t>(p, 24, e.align);
  put<uint32_t>(p, 28, e.crc);
}

std::vector<TensorEntry> decode_tensor_table(std::span<const uint8_t> t, std::span<const uint8_t> weights,
                                             const std::string& label) {
  auto bad = [&](auto&&... a) { fail(label, ": tensor table: ", a...); };
  if (t.size() < 8) bad("section of ", t.size(), " bytes is too short");
  const uint32_t count = get<uint32_t>(t.data(), 0), rec = get<uint32_t>(t.data(), 4);
  if (rec != kElmTensorRecordSize) bad("record size ", rec, " (expected ", kElmTensorRecordSize, ")");
  if (count > kMaxTensors || uint64_t(count) * rec > t.size() - 8) bad(count, " records do not fit its ", t.size(), " bytes");
  const uint8_t* pool = t.data() + 8 + size_t(count) * rec;
  const size_t pool_size = t.size() - 8 - size_t(count) * rec;

  std::vector<TensorEntry> out;
  out.reserve(count);
  std::set<std::string_view> names;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* r = t.data() + 8 + size_t(i) * rec;
    const uint32_t name_off = get<uint32_t>(r, 0), name_len = get<uint32_t>(r, 4);
    if (name_len == 0 || name_len > kMaxNameLen || name_off > pool_size || name_len > pool_size - name_off)
      bad("tensor ", i, ": name outside the name pool");
    TensorEntry e;
    e.name.assign(reinterpret_cast<const char*>(pool + name_off), name_len);
    auto where = [&] { return cat("tensor '", e.name, "'"); };
    if (e.name.find('\0') != std::string::npos) bad(where(), ": name contains a NUL byte");
    const uint8_t dt = r[8], ndim = r[9], st = r[10];
    if (!known_dtype(dt)) bad(where(), ": unknown dtype ", int(dt));
    if (ndim < 1 || ndim > 4) bad(where(), ": ", int(ndim), " dimensions (1 to 4 are allowed)");
    e.view.dtype = DType(dt);
    for (int d = 0; d < 4; ++d) {
      const uint64_t v = get<uint64_t>(r, 16 + 8 * size_t(d));
      if (d < ndim) {
        if (v == 0 || v >= (uint64_t(1) << 40)) bad(where(), ": dimension ", v, " is out of range");
        e.view.shape.push_back(int64_t(v));
      } else if (v != 0) {
        bad(where(), ": unused dimension slots must be zero");
      }
    }
    const uint32_t group = get<uint32_t>(r, 12);
    if (is_quantized(e.view.dtype)) {
      if (!known_dtype(st) || (DType(st) != DType::F16 && DType(st) != DType::F32))
        bad(where(), ": quantization scales must be F16 or F32");
      if (group == 0 || group > (1u << 20)) bad(where(), ": quantization group ", group, " is out of range");
      e.view.group = int(group);
      e.view.scale_dtype = DType(st);
    } else if (group != 0) {
      bad(where(), ": a ", dtype_name(e.view.dtype), " tensor has no quantization group");
    }
    size_t expect = 0;
    try {
      expect = tensor_nbytes(e.view.dtype, e.view.shape, e.view.group, e.view.scale_dtype);
    } catch (const Error& err) {
      bad(where(), ": ", err.what());
    }
    e.offset = get<uint64_t>(r, 48);
    const uint64_t nbytes = get<uint64_t>(r, 56);
    e.crc = get<uint32_t>(r, 64);
    if (nbytes != expect)
      bad(where(), ": ", nbytes, " bytes for ", dtype_name(e.view.dtype), " ", shape_str(e.view.shape), " (expected ",
          expect, ")");
    if (e.offset % kElmTensorAlign != 0) bad(where(), ": data offset ", e.offset, " is not 64-byte aligned");
    if (e.offset > weights.size() || nbytes > weights.size() - e.offset)
      bad(where(), ": data [", e.offset, ", +", nbytes, ") lies outside the ", weights.size(), "-byte weights section");
    e.view.nbytes = size_t(nbytes);
    e.view.data = weights.data() + e.offset;
    ranges.emplace_back(e.offset, e.offset + nbytes);
    out.push_back(std::move(e));
    if (!names.insert(out.back().name).second) bad("duplicate tensor '", out.back().name, "'");
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) bad("tensor data regions overlap");
  return out;
}

}  // namespace

const char* section_kind_name(uint32_t kind) {
  switch (SectionKind(kind)) {
    case SectionKind::Meta: return "meta";
    case SectionKind::Graph: return "graph";
    case SectionKind::Tensors: return "tensors";
    case SectionKind::Weights: return "weights";
    case SectionKind::TokenizerJson: return "tokenizer.json";
    case SectionKind::TokenizerConfig: return "tokenizer_config.json";
    case SectionKind::TokenizerGguf: return "tokenizer (gguf)";
    case SectionKind::ChatTemplate: return "chat template";
    case SectionKind::CompiledPlan: return "compiled plan";
    case SectionKind::Artifact: return "artifact";
  }
  return "unknown";
}

// ---- reading ----

ElmFile ElmFile::open(const std::string& path, Verify verify) {
  auto f = MappedFile::open(path);
  ElmFile e = parse(f->data(), f->size(), path, verify);
  e.file = f;
  return e;
}

ElmFile ElmFile::parse(const uint8_t* p, size_t size, const std::string& label, Verify verify) {
  auto bad = [&](auto&&... a) { fail(label, ": ", a...); };
  ElmFile f;
  f.base_ = p;
  f.size_ = size;
  f.label_ = label;
  if (size < 8 || std::memcmp(p, kMagic, 8) != 0) bad("not a .elm file (bad magic)");
  if (size < kElmHeaderSize) bad("truncated .elm file (", size, " bytes, shorter than the header)");
  f.version_major = get<uint16_t>(p, 8);
  f.version_minor = get<uint16_t>(p, 10);
  if (f.version_major != kElmVersionMajor)
    bad(".elm format version ", f.version_major, ".", f.version_minor, " is not supported (this elm reads ",
        kElmVersionMajor, ".x; ", f.version_major > kElmVersionMajor ? "a newer elm wrote it" : "reconvert the model",
        ")");
  if (verify != Verify::None && get<uint32_t>(p, 60) != crc32c(p, 60)) bad("header checksum mismatch (damaged file)");
  if (get<uint32_t>(p, 12) != kElmHeaderSize) bad("header size ", get<uint32_t>(p, 12), " (expected 64)");
  const uint64_t file_size = get<uint64_t>(p, 16);
  if (file_size > size) bad("truncated: the header says ", file_size, " bytes, the file has ", size);
  if (file_size < size) bad("the file has ", size - file_size, " unexpected bytes after its end");
  const uint64_t table_off = get<uint64_t>(p, 24);
  const uint32_t count = get<uint32_t>(p, 32), entry_size = get<uint32_t>(p, 36);
  if (entry_size != kElmSectionEntrySize) bad("section entry size ", entry_size, " (expected 48)");
  if (count == 0 || count > kMaxSections) bad("absurd section count ", count);
  if (table_off < kElmHeaderSize || table_off > size || uint64_t(count) * entry_size > size - table_off)
    bad("section table [", table_off, ", +", uint64_t(count) * entry_size, ") lies outside the ", size, "-byte file");
  const size_t table_bytes = size_t(count) * entry_size;
  if (verify != Verify::None && get<uint32_t>(p, 40) != crc32c(p + table_off, table_bytes))
    bad("section table checksum mismatch (damaged file)");

  // Regions that must not overlap: the header, the table, every section.
  std::vector<std::pair<uint64_t, uint64_t>> regions = {{0, kElmHeaderSize}, {table_off, table_off + table_bytes}};
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* r = p + table_off + size_t(i) * entry_size;
    SectionEntry e;
    e.kind = get<uint32_t>(r, 0);
    e.flags = get<uint32_t>(r, 4);
    e.offset = get<uint64_t>(r, 8);
    e.size = get<uint64_t>(r, 16);
    e.align = get<uint32_t>(r, 24);
    e.crc = get<uint32_t>(r, 28);
    auto where = [&] { return cat("section ", i, " (", section_kind_name(e.kind), ")"); };
    if (!known_kind(e.kind) && !(e.flags & kSectionOptional))
      bad(where(), ": unknown required section kind ", e.kind, " (written by a newer elm?)");
    if (!is_pow2(e.align) || e.align > kMaxAlign) bad(where(), ": alignment ", e.align, " is not a power of two <= 65536");
    if (e.offset % e.align != 0) bad(where(), ": offset ", e.offset, " is not a multiple of its alignment ", e.align);
    if (e.offset > size || e.size > size - e.offset)
      bad(where(), ": [", e.offset, ", +", e.size, ") lies outside the ", size, "-byte file (truncated?)");
    if (e.size) regions.emplace_back(e.offset, e.offset + e.size);
    f.sections.push_back(e);
  }
  std::sort(regions.begin(), regions.end());
  for (size_t i = 1; i < regions.size(); ++i)
    if (regions[i].first < regions[i - 1].second) bad("sections overlap at offset ", regions[i].first);

  for (size_t i = 0; i < f.sections.size(); ++i)
    if (known_kind(f.sections[i].kind) && verified_at(verify, f.sections[i].kind) && !f.section_ok(i))
      bad("section ", i, " (", section_kind_name(f.sections[i].kind), ") checksum mismatch (damaged file)");

  // Exactly one of each core section; at most one tokenizer / template section of each kind.
  for (SectionKind k : {SectionKind::Meta, SectionKind::Graph, SectionKind::Tensors, SectionKind::Weights,
                        SectionKind::TokenizerJson, SectionKind::TokenizerConfig, SectionKind::TokenizerGguf,
                        SectionKind::ChatTemplate}) {
    const auto n = std::count_if(f.sections.begin(), f.sections.end(),
                                 [&](const SectionEntry& e) { return e.kind == uint32_t(k); });
    const bool required = k == SectionKind::Meta || k == SectionKind::Graph || k == SectionKind::Tensors ||
                          k == SectionKind::Weights;
    if (required && n == 0) bad("no ", section_kind_name(uint32_t(k)), " section");
    if (n > 1) bad(n, " ", section_kind_name(uint32_t(k)), " sections (at most one allowed)");
  }
  f.tensors = decode_tensor_table(f.bytes(size_t(f.find(SectionKind::Tensors))),
                                  f.bytes(size_t(f.find(SectionKind::Weights))), label);
  return f;
}

std::span<const uint8_t> ElmFile::bytes(size_t i) const {
  const SectionEntry& e = sections.at(i);
  return {base_ + e.offset, size_t(e.size)};
}

std::string_view ElmFile::text(size_t i) const {
  auto b = bytes(i);
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

int ElmFile::find(SectionKind kind) const {
  for (size_t i = 0; i < sections.size(); ++i)
    if (sections[i].kind == uint32_t(kind)) return int(i);
  return -1;
}

bool ElmFile::section_ok(size_t i) const {
  auto b = bytes(i);
  return crc32c(b.data(), b.size()) == sections[i].crc;
}

bool ElmFile::tensor_ok(size_t i) const {
  const TensorEntry& t = tensors.at(i);
  return crc32c(t.view.data, t.view.nbytes) == t.crc;
}

// ---- writing ----

std::vector<uint8_t> encode_tensor_table(const std::vector<TensorEntry>& tensors) {
  std::string pool;
  std::vector<uint8_t> out(8 + tensors.size() * kElmTensorRecordSize, 0);
  put<uint32_t>(out.data(), 0, uint32_t(tensors.size()));
  put<uint32_t>(out.data(), 4, uint32_t(kElmTensorRecordSize));
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorEntry& t = tensors[i];
    ELM_CHECK(t.view.shape.size() >= 1 && t.view.shape.size() <= 4, "tensor '", t.name, "': 1 to 4 dimensions");
    uint8_t* r = out.data() + 8 + i * kElmTensorRecordSize;
    put<uint32_t>(r, 0, uint32_t(pool.size()));
    put<uint32_t>(r, 4, uint32_t(t.name.size()));
    pool += t.name;
    r[8] = uint8_t(t.view.dtype);
    r[9] = uint8_t(t.view.shape.size());
    r[10] = is_quantized(t.view.dtype) ? uint8_t(t.view.scale_dtype) : 0;
    put<uint32_t>(r, 12, is_quantized(t.view.dtype) ? uint32_t(t.view.group) : 0);
    for (size_t d = 0; d < t.view.shape.size(); ++d) put<uint64_t>(r, 16 + 8 * d, uint64_t(t.view.shape[d]));
    put<uint64_t>(r, 48, t.offset);
    put<uint64_t>(r, 56, t.view.nbytes);
    put<uint32_t>(r, 64, t.crc);
  }
  out.insert(out.end(), pool.begin(), pool.end());
  return out;
}

ElmWriter::ElmWriter(const std::string& path) : path_(path), tmp_(path + ".tmp") {
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail("cannot write '", tmp_, "': ", std::strerror(errno));
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
  const uint8_t zeros[kElmHeaderSize] = {};
  raw_write(zeros, sizeof zeros);  // the header, written last
}

ElmWriter::~ElmWriter() {
  if (f_) std::fclose(f_);
  if (!done_) std::remove(tmp_.c_str());
}

void ElmWriter::raw_write(const void* data, size_t n) {
  if (n && std::fwrite(data, 1, n, f_) != n) fail("error writing '", tmp_, "': ", std::strerror(errno));
  pos_ += n;
}

size_t ElmWriter::begin_section(SectionKind kind, uint32_t align, uint32_t flags) {
  ELM_CHECK(!open_section_ && !done_, "ElmWriter: a section is already open");
  ELM_CHECK(is_pow2(align) && align <= kMaxAlign, "ElmWriter: bad alignment ", align);
  static const uint8_t zeros[kMaxAlign] = {};
  raw_write(zeros, size_t(align_up(pos_, align) - pos_));
  SectionEntry e;
  e.kind = uint32_t(kind);
  e.flags = flags;
  e.offset = pos_;
  e.align = align;
  entries_.push_back(e);
  open_section_ = true;
  return entries_.size() - 1;
}

void ElmWriter::write(const void* data, size_t n) {
  ELM_CHECK(open_section_, "ElmWriter: write outside a section");
  raw_write(data, n);
  entries_.back().crc = crc32c(data, n, entries_.back().crc);
}

uint64_t ElmWriter::section_pos() const { return pos_ - entries_.back().offset; }

void ElmWriter::pad_to(size_t align) {
  static const uint8_t zeros[kMaxAlign] = {};
  ELM_CHECK(align <= kMaxAlign, "ElmWriter: bad padding");
  write(zeros, size_t(align_up(section_pos(), align) - section_pos()));
}

void ElmWriter::end_section() {
  ELM_CHECK(open_section_, "ElmWriter: no open section");
  entries_.back().size = section_pos();
  open_section_ = false;
}

size_t ElmWriter::add_section(SectionKind kind, std::span<const uint8_t> bytes, uint32_t align, uint32_t flags) {
  const size_t i = begin_section(kind, align, flags);
  write(bytes.data(), bytes.size());
  end_section();
  return i;
}

size_t ElmWriter::add_text(SectionKind kind, std::string_view text, uint32_t flags) {
  return add_section(kind, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}, 1, flags);
}

size_t ElmWriter::copy_section(const SectionEntry& e, std::span<const uint8_t> bytes) {
  const size_t i = add_section(SectionKind(e.kind), bytes, e.align, e.flags);
  ELM_CHECK(entries_[i].crc == e.crc, "section ", section_kind_name(e.kind),
            " of the input is damaged (checksum mismatch); reconvert the model");
  return i;
}

void ElmWriter::finish() {
  ELM_CHECK(!open_section_ && !done_, "ElmWriter: finish with a section open");
  static const uint8_t zeros[8] = {};
  raw_write(zeros, size_t(align_up(pos_, 8) - pos_));
  const uint64_t table_off = pos_;
  std::vector<uint8_t> table(entries_.size() * kElmSectionEntrySize);
  for (size_t i = 0; i < entries_.size(); ++i) encode_entry(table.data() + i * kElmSectionEntrySize, entries_[i]);
  raw_write(table.data(), table.size());
  uint8_t header[kElmHeaderSize];
  encode_header(header, pos_, table_off, uint32_t(entries_.size()), crc32c(table.data(), table.size()));
  if (std::fseek(f_, 0, SEEK_SET) != 0 || std::fwrite(header, 1, sizeof header, f_) != sizeof header ||
      std::fflush(f_) != 0)
    fail("error writing '", tmp_, "': ", std::strerror(errno));
  const int rc = std::fclose(f_);
  f_ = nullptr;
  ELM_CHECK(rc == 0, "error writing '", tmp_, "': ", std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  ELM_CHECK(!ec, "cannot rename '", tmp_, "' to '", path_, "': ", ec.message());
  done_ = true;
}

void reseal_elm_image(std::vector<uint8_t>& img) {
  ELM_CHECK(img.size() >= kElmHeaderSize, "reseal: image too small");
  uint8_t* p = img.data();
  const uint64_t table_off = get<uint64_t>(p, 24);
  const uint32_t count = get<uint32_t>(p, 32);
  const bool table_inside = table_off <= img.size() && uint64_t(count) * kElmSectionEntrySize <= img.size() - table_off;
  if (!table_inside) {  // nothing to reseal but the header
    put<uint32_t>(p, 60, crc32c(p, 60));
    return;
  }
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t* r = p + table_off + size_t(i) * kElmSectionEntrySize;
    const uint64_t off = get<uint64_t>(r, 8), size = get<uint64_t>(r, 16);
    if (off <= img.size() && size <= img.size() - off) put<uint32_t>(r, 28, crc32c(p + off, size_t(size)));
  }
  put<uint32_t>(p, 40, crc32c(p + table_off, size_t(count) * kElmSectionEntrySize));
  put<uint32_t>(p, 60, crc32c(p, 60));
}

}  // namespace elm
