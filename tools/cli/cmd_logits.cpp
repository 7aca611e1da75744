// elm logits: float32 logits for given token ids, for checking conversions against references.
#include <cstdio>

#include "cli.h"
#include "core/error.h"
#include "format/safetensors.h"
#include "options.h"

namespace elm::cli {

namespace {
struct LogitsArgs {
  ModelOptions model;
  std::string ids;
  int stepwise = -1;
  std::string out;
};

int run(const LogitsArgs& a) {
  ELM_CHECK(!a.model.model.empty(), "give the model with -m");
  std::shared_ptr<Model> m = Model::load(a.model.model);
  const std::vector<int32_t> ids = parse_ids(a.ids);
  ELM_CHECK(!ids.empty(), "give the token ids with --ids");
  ELM_CHECK(a.stepwise < 0 || (a.stepwise >= 1 && size_t(a.stepwise) <= ids.size()), "--stepwise K needs 1 <= K <= ",
            ids.size());
  Session s(m, a.model.session(*m));
  const int64_t V = s.vocab(), T = int64_t(ids.size());
  std::vector<float> logits;
  if (a.stepwise < 0) {
    logits = s.feed_all(0, ids);
  } else {
    const std::span<const int32_t> all(ids);
    logits = s.feed_all(0, all.first(size_t(a.stepwise)));
    for (size_t t = size_t(a.stepwise); t < ids.size(); ++t) {
      std::span<const float> row = s.feed(0, all.subspan(t, 1));
      logits.insert(logits.end(), row.begin(), row.end());
    }
  }
  TensorView v;
  v.dtype = DType::F32;
  v.shape = {T, V};
  v.data = logits.data();
  v.nbytes = logits.size() * 4;
  write_safetensors(a.out, {{"logits", v}});
  std::fprintf(stderr, "wrote logits [%lld, %lld] to %s\n", (long long)T, (long long)V, a.out.c_str());
  return 0;
}
}  // namespace

void register_logits(CLI::App& app, Registry& reg) {
  auto a = std::make_shared<LogitsArgs>();
  CLI::App* sub = app.add_subcommand("logits", "write the float32 logits of given token ids to a safetensors file");
  a->model.add(sub);
  sub->add_option("--ids", a->ids, "comma-separated token ids")->required();
  sub->add_option("--stepwise", a->stepwise, "prefill the first K ids, then decode the rest one at a time");
  sub->add_option("-o,--output", a->out, "output .safetensors file")->required();
  reg.add(sub, [a] { return run(*a); });
}

}  // namespace elm::cli
