#include "elm_test_util.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <span>

#include "core/mapped_file.h"
#include "format/convert.h"
#include "graph/builders/family.h"
#include "util.h"

namespace elm::test {

std::string convert_to_temp(const std::string& input, const std::string& name, const std::string& quant) {
  const std::string out = temp_dir() + "/" + name + ".elm";
  ConvertOptions o;
  o.quant = quant;
  convert_to_elm(input, out, o);
  return out;
}

std::vector<float> model_logits(std::shared_ptr<const Model> model, const std::vector<int32_t>& ids, int stepwise,
                                const SessionOptions& options) {
  Session s(model, options);
  const std::span<const int32_t> all(ids);
  if (stepwise <= 0) return s.feed_all(0, all);
  std::vector<float> out = s.feed_all(0, all.first(size_t(stepwise)));
  for (size_t t = size_t(stepwise); t < ids.size(); ++t) {
    std::span<const float> row = s.feed(0, all.subspan(t, 1));
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

std::vector<std::string> supported_fixtures() {
  std::vector<std::string> out;
  if (!have_shared("fixtures/tiny/index.json")) return out;
  const nlohmann::json index = nlohmann::json::parse(read_text_file(shared("fixtures/tiny/index.json")));
  const std::vector<std::string> types = supported_model_types();
  for (const auto& f : index["fixtures"])
    if (std::find(types.begin(), types.end(), f["model_type"].get<std::string>()) != types.end())
      out.push_back(f["name"].get<std::string>());
  return out;
}

}  // namespace elm::test
