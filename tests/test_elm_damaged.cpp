// Damaged .elm files: truncated at every section boundary, flipped bytes in the header, the section
// table and the graph, wrong versions, overlapping sections, offsets past the end, absurd sizes, and
// inconsistent contents behind valid checksums (forged with reseal_elm_image, so the structural checks
// are exercised too). Each gives an elm::Error saying what is wrong, never a crash or an out-of-bounds
// read (the suite runs under AddressSanitizer in CI).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "core/mapped_file.h"
#include "elm_test_util.h"
#include "format/elm_file.h"
#include "runtime/model.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

using Image = std::vector<uint8_t>;

template <class T>
T get(const Image& b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}
template <class T>
void put(Image& b, size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof(T));
}

class Damaged : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_shared("fixtures/tiny/llama")) return;
    path_ = convert_to_temp(shared("fixtures/tiny/llama"), "damage-base", "int4");
    const std::string s = read_text_file(path_);
    good_ = new Image(s.begin(), s.end());
  }
  static void TearDownTestSuite() {
    delete good_;
    good_ = nullptr;
  }
  void SetUp() override {
    if (!good_) GTEST_SKIP() << "fixtures missing";
  }

  const Image& good() const { return *good_; }
  size_t table() const { return size_t(get<uint64_t>(good(), 24)); }
  size_t count() const { return get<uint32_t>(good(), 32); }
  size_t entry(size_t i) const { return table() + i * 48; }
  size_t section(SectionKind k) const {
    for (size_t i = 0; i < count(); ++i)
      if (get<uint32_t>(good(), entry(i)) == uint32_t(k)) return i;
    ADD_FAILURE() << "no section " << int(k);
    return 0;
  }
  size_t offset_of(size_t i) const { return size_t(get<uint64_t>(good(), entry(i) + 8)); }
  size_t size_of(size_t i) const { return size_t(get<uint64_t>(good(), entry(i) + 16)); }

  // Loads the image from a file; returns the error message ("" when it loaded).
  static std::string load_error(const Image& img) {
    const std::string p = temp_dir() + "/damaged.elm";
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(img.data()),
                                                               std::streamsize(img.size()));
    try {
      load_elm(p);
    } catch (const Error& e) {
      return e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not an elm::Error: " << e.what();
      return e.what();
    }
    return "";
  }
  static void expect_error(const Image& img, const std::string& needle, const std::string& what) {
    const std::string err = load_error(img);
    EXPECT_NE(err.find(needle), std::string::npos) << what << ": expected '" << needle << "' in: '" << err << "'";
  }
  // Edits, reseals every checksum, and expects `needle`.
  void expect_forged(const std::function<void(Image&)>& edit, const std::string& needle, const std::string& what) {
    Image b = good();
    edit(b);
    reseal_elm_image(b);
    expect_error(b, needle, what);
  }

  static inline std::string path_;
  static inline Image* good_ = nullptr;
};

}  // namespace

TEST_F(Damaged, IntactFileLoads) { EXPECT_EQ(load_error(good()), ""); }

TEST_F(Damaged, TruncatedAtEverySectionBoundary) {
  std::vector<size_t> cuts = {0, 4, 8, 63, 64, table(), table() + 47, good().size() - 1};
  for (size_t i = 0; i < count(); ++i) {
    cuts.push_back(offset_of(i));
    cuts.push_back(offset_of(i) + size_of(i) / 2);
    cuts.push_back(offset_of(i) + size_of(i));
  }
  for (size_t len : cuts) {
    if (len >= good().size()) continue;
    const Image b(good().begin(), good().begin() + long(len));
    const std::string err = load_error(b);
    const bool clear = err.find("truncated") != std::string::npos || err.find("bad magic") != std::string::npos;
    EXPECT_TRUE(clear) << "cut at " << len << ": '" << err << "'";
  }
}

TEST_F(Damaged, FlippedBytesAreCaughtByChecksums) {
  for (size_t i = 0; i < 64; ++i) {
    Image b = good();
    b[i] ^= 0x20;
    EXPECT_NE(load_error(b), "") << "header byte " << i;
  }
  for (size_t i = table(); i < table() + count() * 48; ++i) {
    Image b = good();
    b[i] ^= 0x01;
    expect_error(b, "section table checksum mismatch", "table byte " + std::to_string(i));
  }
  for (SectionKind k : {SectionKind::Graph, SectionKind::Meta, SectionKind::Tensors}) {
    const size_t s = section(k);
    for (size_t at : {offset_of(s), offset_of(s) + size_of(s) / 2, offset_of(s) + size_of(s) - 1}) {
      Image b = good();
      b[at] ^= 0x04;
      expect_error(b, std::string(section_kind_name(uint32_t(k))) + ") checksum mismatch", "byte " + std::to_string(at));
    }
  }
  Image b = good();
  b[10] ^= 1;  // minor version: only the header checksum notices
  expect_error(b, "header checksum mismatch", "minor version");
}

TEST_F(Damaged, WrongVersionAndMagic) {
  expect_forged([](Image& b) { put<uint16_t>(b, 8, 2); }, "format version 2.0 is not supported", "major 2");
  expect_forged([](Image& b) { put<uint16_t>(b, 8, 0); }, "reconvert the model", "major 0");
  expect_forged([](Image& b) { b[1] = 'X'; }, "not a .elm file", "magic");
  expect_forged([](Image& b) { put<uint32_t>(b, 12, 128); }, "header size", "header size");
  // A newer minor version with an unknown optional section still loads.
  expect_forged(
      [&](Image& b) {
        put<uint16_t>(b, 10, 7);
        put<uint32_t>(b, entry(count() - 1), 999);  // the last section becomes an unknown optional one
        put<uint32_t>(b, entry(count() - 1) + 4, 1);
      },
      "", "unknown optional section");
}

TEST_F(Damaged, ForgedSectionTables) {
  const size_t g = section(SectionKind::Graph), m = section(SectionKind::Meta), w = section(SectionKind::Weights);
  expect_forged([&](Image& b) { put<uint64_t>(b, entry(g) + 8, offset_of(m)); }, "sections overlap", "overlap");
  expect_forged([&](Image& b) { put<uint64_t>(b, entry(w) + 8, offset_of(w) - 4096); }, "sections overlap",
                "weights overlap");
  expect_forged([&](Image& b) { put<uint64_t>(b, entry(g) + 8, good().size() + 4096); }, "outside", "offset past end");
  expect_forged([&](Image& b) { put<uint64_t>(b, entry(g) + 16, uint64_t(1) << 62); }, "outside", "absurd size");
  expect_forged([&](Image& b) { put<uint64_t>(b, entry(g) + 16, ~uint64_t(0)); }, "outside", "size overflow");
  expect_forged([&](Image& b) { put<uint64_t>(b, entry(g) + 8, ~uint64_t(0) - 1); }, "outside", "offset overflow");
  expect_forged([&](Image& b) { put<uint32_t>(b, 32, 0x7fffffff); }, "absurd section count", "count");
  expect_forged([&](Image& b) { put<uint32_t>(b, 32, uint32_t(count() + 1)); }, "section table", "count + 1");
  expect_forged([&](Image& b) { put<uint64_t>(b, 24, good().size()); }, "outside", "table past end");
  expect_forged([&](Image& b) { put<uint64_t>(b, 24, 8); }, "outside", "table inside header");
  expect_forged([&](Image& b) { put<uint32_t>(b, 36, 40); }, "entry size", "entry size");
  expect_forged([&](Image& b) { put<uint32_t>(b, entry(w) + 24, 3000); }, "power of two", "alignment");
  expect_forged([&](Image& b) { put<uint64_t>(b, entry(w) + 8, offset_of(w) + 1); }, "not a multiple of its alignment",
                "misaligned");
  expect_forged([&](Image& b) { put<uint32_t>(b, entry(g), 77); }, "unknown required section kind 77", "kind");
  expect_forged([&](Image& b) { put<uint32_t>(b, entry(g), uint32_t(SectionKind::Meta)); }, "2 meta sections",
                "duplicate");
  expect_forged([&](Image& b) { put<uint32_t>(b, entry(g), uint32_t(SectionKind::ChatTemplate)); }, "no graph section",
                "missing graph");
  expect_forged([](Image& b) { put<uint64_t>(b, 16, b.size() - 1); }, "unexpected bytes", "file size");
}

TEST_F(Damaged, ForgedContents) {
  const size_t g = section(SectionKind::Graph), m = section(SectionKind::Meta), t = section(SectionKind::Tensors);
  const size_t rec0 = offset_of(t) + 8, rec1 = rec0 + 72;
  auto replace = [&](Image& b, size_t s, const std::string& from, const std::string& to) {
    ASSERT_EQ(from.size(), to.size());
    auto begin = b.begin() + long(offset_of(s)), end = begin + long(size_of(s));
    auto it = std::search(begin, end, from.begin(), from.end());
    ASSERT_NE(it, end) << from;
    std::copy(to.begin(), to.end(), it);
  };
  expect_forged([&](Image& b) { b[offset_of(g)] = 'x'; }, "graph section is not a JSON object", "graph JSON");
  expect_forged([&](Image& b) { replace(b, g, "\"matmul\"", "\"matmux\""); }, "unknown op 'matmux'", "op");
  expect_forged([&](Image& b) { replace(b, g, "\"cols\":64", "\"cols\":65"); }, "graph node", "shape");
  expect_forged([&](Image& b) { replace(b, g, "\"output\":", "\"outpux\":"); }, "malformed", "no output");
  expect_forged([&](Image& b) { replace(b, m, "\"vocab_size\":512", "\"vocab_size\":511"); }, "model info says 511",
                "vocab");
  expect_forged([&](Image& b) { b[rec0 + 8] = 99; }, "unknown dtype 99", "dtype");
  expect_forged([&](Image& b) { put<uint64_t>(b, rec0 + 16, get<uint64_t>(b, rec0 + 16) + 1); }, "expected",
                "dims vs bytes");
  expect_forged([&](Image& b) { put<uint64_t>(b, rec0 + 16, uint64_t(1) << 50); }, "out of range", "huge dim");
  expect_forged([&](Image& b) { b[rec0 + 9] = 9; }, "dimensions", "ndim");
  expect_forged([&](Image& b) { put<uint64_t>(b, rec0 + 48, 1u << 30); }, "outside", "tensor offset");
  expect_forged([&](Image& b) { put<uint64_t>(b, rec0 + 48, ~uint64_t(0) - 63); }, "outside", "tensor offset overflow");
  expect_forged([&](Image& b) { put<uint64_t>(b, rec0 + 48, 32); }, "aligned", "tensor alignment");
  expect_forged([&](Image& b) { put<uint64_t>(b, rec1 + 48, get<uint64_t>(b, rec0 + 48)); }, "overlap", "tensors overlap");
  expect_forged([&](Image& b) { put<uint32_t>(b, rec0, 0xfffffff0u); }, "name outside the name pool", "name");
  expect_forged([&](Image& b) { put<uint32_t>(b, offset_of(t), 0x7fffffff); }, "do not fit", "tensor count");
  expect_forged([&](Image& b) { put<uint32_t>(b, rec1, get<uint32_t>(b, rec0)), put<uint32_t>(b, rec1 + 4, get<uint32_t>(b, rec0 + 4)); },
                "duplicate tensor", "duplicate name");
}

TEST_F(Damaged, DamagedWeightsLoadButInspectReportsThem) {
  // Weights are used in place and not read at load; elm inspect verifies every tensor.
  Image b = good();
  const size_t w = section(SectionKind::Weights);
  b[offset_of(w) + 100] ^= 0xff;
  EXPECT_EQ(load_error(b), "");
  const std::string p = temp_dir() + "/damaged-weights.elm";
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  ElmFile f = ElmFile::open(p, Verify::None);
  size_t bad = 0;
  for (size_t i = 0; i < f.tensors.size(); ++i) bad += !f.tensor_ok(i);
  EXPECT_EQ(bad, 1u);
  EXPECT_FALSE(f.section_ok(w));
  EXPECT_THROW(ElmFile::open(p, Verify::All), Error);
}

TEST_F(Damaged, CommandLineReportsDamage) {
  CliResult ok = run_elm("inspect " + path_);
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("checksums: " + std::to_string(count()) + "/" + std::to_string(count()) + " sections ok"),
            std::string::npos)
      << ok.output;
  EXPECT_NE(ok.output.find("Q4 g32 F16 scales"), std::string::npos) << ok.output;

  Image b = good();
  b[offset_of(section(SectionKind::Weights)) + 100] ^= 0xff;
  const std::string p = temp_dir() + "/cli-damaged.elm";
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  CliResult bad = run_elm("inspect " + p);
  EXPECT_FALSE(bad.signaled);
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_NE(bad.output.find("MISMATCH"), std::string::npos) << bad.output;

  b = good();
  b.resize(b.size() / 2);
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  for (const std::string& cmd : {"run -m " + p + " --prompt-ids 1 -n 2", "inspect " + p, "compile " + p + " --backends cpu"}) {
    CliResult r = run_elm(cmd);
    EXPECT_FALSE(r.signaled) << cmd;
    EXPECT_NE(r.status, 0) << cmd;
    EXPECT_NE(r.output.find("truncated"), std::string::npos) << cmd << ": " << r.output;
  }
}
