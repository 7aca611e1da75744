// Helpers the .elm / GGUF tests share: converting into the test's temp dir and comparing the logits of
// two models exactly or within a tolerance.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "runtime/model.h"
#include "runtime/session.h"

namespace elm::test {

// Converts `input` under `quant` to <temp_dir>/<name>.elm and returns the path.
std::string convert_to_temp(const std::string& input, const std::string& name, const std::string& quant);

// Logits of every position for `ids`: one prefill (`stepwise` = 0) or a prefill of `stepwise` ids then
// one token per step.
std::vector<float> model_logits(std::shared_ptr<const Model> model, const std::vector<int32_t>& ids, int stepwise = 0,
                                const SessionOptions& options = {});

// Fixture directories under ../shared/fixtures/tiny whose model_type this build supports.
std::vector<std::string> supported_fixtures();

}  // namespace elm::test
