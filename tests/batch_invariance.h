// The property greedy speculative decoding needs from a backend: a step of several tokens computes every
// row exactly as one-token steps would (a verification pass reads k + 1 tokens where plain decoding reads
// one). Shared by the CPU and CUDA batch-invariance tests.
#pragma once
#include <cstddef>
#include <memory>
#include <span>

#include "runtime/model.h"
#include "runtime/session.h"

namespace elm::test {

// Two sessions of `m` under `o` read the same `prompt` tokens, then the next n_ids - prompt tokens: one
// a token a step, the other in steps of sizes[0], sizes[1], ... (cycled). Adds a test failure naming the
// first row whose logits differ in any bit.
void expect_steps_equal_one_token_steps(std::shared_ptr<const Model> m, const SessionOptions& o, size_t n_ids,
                                        size_t prompt, std::span<const size_t> sizes);

// The same for the llama and gemma3 tiny fixtures (GQA, sliding windows), each with its weights as
// stored, int8 and int4-g32 (skips the test when ../shared lacks them).
void expect_fixtures_steps_equal_one_token_steps(const SessionOptions& o, size_t n_ids, size_t prompt,
                                                 std::span<const size_t> sizes);

}  // namespace elm::test
