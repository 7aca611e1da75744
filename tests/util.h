// Shared helpers for the test suite: where the fixtures live, and numeric comparisons.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace elm::test {

// ../shared (fixtures, real models, text); tests that need it skip when it is absent.
std::string shared_dir();
std::string shared(const std::string& rel);  // shared_dir() + "/" + rel
bool have_shared(const std::string& rel);
std::string source_dir();
std::string binary_dir();
std::string temp_dir();  // a fresh directory for this test process

// max |a - b| / max |ref|: the fixtures' error measure.
double rel_max_err(const float* a, const float* ref, size_t n);

// transformers' greedy continuations of ref-28m (models/ref-28m/reference.json): three prompts, 32 ids each.
struct GreedyRef {
  std::vector<int32_t> prompt, ids;
};
std::vector<GreedyRef> ref28m_greedy();

// `<build>/bin/elm ARGS` through the shell (ARGS may redirect), stdout and stderr together.
struct CliResult {
  int status = 0;  // exit status; -1 when killed by a signal
  bool signaled = false;
  std::string output;
};
CliResult run_elm(const std::string& args);

}  // namespace elm::test

#define ELM_REQUIRE_SHARED(rel)                                              \
  do {                                                                        \
    if (!::elm::test::have_shared(rel)) GTEST_SKIP() << "missing " << (rel); \
  } while (0)
