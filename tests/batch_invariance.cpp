#include "batch_invariance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "quant/quantize.h"
#include "util.h"

namespace elm::test {

void expect_steps_equal_one_token_steps(std::shared_ptr<const Model> m, const SessionOptions& o, size_t n_ids,
                                        size_t prompt, std::span<const size_t> sizes) {
  const int64_t V = m->graph.nodes[size_t(m->graph.output)].cols;
  std::vector<int32_t> ids;
  for (size_t i = 0; i < n_ids; ++i) ids.push_back(int32_t((int64_t(i) * 7919 + 13) % V));
  Session one(m, o), many(m, o);
  one.feed(0, std::span<const int32_t>(ids.data(), prompt));
  many.feed(0, std::span<const int32_t>(ids.data(), prompt));
  std::vector<float> want, got;
  for (size_t i = prompt; i < ids.size(); ++i) {
    const std::vector<float> r = one.feed_all(0, std::span<const int32_t>(&ids[i], 1));
    want.insert(want.end(), r.begin(), r.end());
  }
  for (size_t i = prompt, k = 0; i < ids.size(); ++k) {
    const size_t n = std::min(sizes[k % sizes.size()], ids.size() - i);
    const std::vector<float> r = many.feed_all(0, std::span<const int32_t>(&ids[i], n));
    got.insert(got.end(), r.begin(), r.end());
    i += n;
  }
  ASSERT_EQ(got.size(), want.size());
  size_t first = got.size();
  for (size_t i = 0; i < got.size() && first == got.size(); ++i)
    if (got[i] != want[i]) first = i;
  EXPECT_EQ(first, got.size()) << "first difference in row " << first / size_t(V) << ": " << got[first] << " vs "
                               << want[first];
}

void expect_fixtures_steps_equal_one_token_steps(const SessionOptions& o, size_t n_ids, size_t prompt,
                                                 std::span<const size_t> sizes) {
  for (const char* fixture : {"llama", "gemma3"}) {
    const std::string rel = std::string("fixtures/tiny/") + fixture;
    ELM_REQUIRE_SHARED(rel);
    for (const char* quant : {"keep", "int8", "int4-g32"}) {
      SCOPED_TRACE(rel + " " + quant);
      std::shared_ptr<Model> m = Model::load(shared(rel));
      if (std::string(quant) != "keep") quantize_weights(*m, QuantPolicy::parse(quant));
      expect_steps_equal_one_token_steps(m, o, n_ids, prompt, sizes);
    }
  }
}

}  // namespace elm::test
