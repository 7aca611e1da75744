#include "fixture_check.h"

#include <gtest/gtest.h>

#include "format/safetensors.h"
#include "util.h"

namespace elm::test {

FixtureRef load_fixture_ref(const std::string& dir) {
  SafetensorsFile f = SafetensorsFile::open(dir + "/reference.safetensors");
  FixtureRef r;
  const TensorView& ids = f.tensors().at("input_ids");
  const auto* p = static_cast<const int32_t*>(ids.data);
  r.ids.assign(p, p + ids.numel());
  r.prompt_len = *static_cast<const int32_t*>(f.tensors().at("prompt_len").data);
  const TensorView& lg = f.tensors().at("logits");
  r.vocab = lg.shape.back();
  r.logits = to_f32(lg);
  return r;
}

FixtureErrors fixture_errors(std::shared_ptr<const Model> model, const FixtureRef& ref, const SessionOptions& options) {
  FixtureErrors e;
  const size_t V = size_t(ref.vocab);
  {
    Session s(model, options);
    std::vector<float> all = s.feed_all(0, ref.ids);
    e.prefill = rel_max_err(all.data(), ref.logits.data(), all.size());
  }
  {
    Session s(model, options);
    const std::span<const int32_t> ids(ref.ids);
    std::vector<float> all = s.feed_all(0, ids.first(size_t(ref.prompt_len)));
    for (size_t t = size_t(ref.prompt_len); t < ids.size(); ++t) {
      std::span<const float> row = s.feed(0, ids.subspan(t, 1));
      all.insert(all.end(), row.begin(), row.end());
    }
    EXPECT_EQ(all.size(), ref.ids.size() * V);
    e.stepwise = rel_max_err(all.data(), ref.logits.data(), std::min(all.size(), ref.logits.size()));
  }
  return e;
}

}  // namespace elm::test
