// The fixtures' correctness check, shared by every test that runs a model against transformers'
// reference logits (HF directories, .elm files, other backends).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "runtime/model.h"
#include "runtime/session.h"

namespace elm::test {

struct FixtureRef {
  std::vector<int32_t> ids;
  int prompt_len = 0;
  std::vector<float> logits;  // [ids.size(), vocab]
  int64_t vocab = 0;
};

// Reads <dir>/reference.safetensors (input_ids, prompt_len, logits).
FixtureRef load_fixture_ref(const std::string& dir);

// Max relative error (max |diff| / max |ref|) over all positions for one prefill of every id, and for a
// prefill of prompt_len ids followed by single-token decode steps.
struct FixtureErrors {
  double prefill = 0, stepwise = 0;
};
FixtureErrors fixture_errors(std::shared_ptr<const Model> model, const FixtureRef& ref,
                             const SessionOptions& options = {});

}  // namespace elm::test
