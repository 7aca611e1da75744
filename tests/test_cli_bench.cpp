// `elm bench` from the command line: --json output and --depth (tests that start with tokens cached,
// like llama-bench -d), including a depth that does not fit the context.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "util.h"

using namespace elm::test;

namespace {

// Output (stdout and stderr) and exit status of `elm ARGS`.
std::pair<std::string, int> elm_cli(const std::string& args) {
  std::string out;
  FILE* p = popen((binary_dir() + "/bin/elm " + args + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  return {out, pclose(p)};
}

}  // namespace

TEST(CliBench, JsonWithDepthAndContextCheck) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  const std::string model = shared("fixtures/tiny/llama");
  // 32 cached tokens + 8 test tokens fill a 40-token context exactly.
  auto [out, rc] = elm_cli("bench -m " + model + " -p 8 -n 4 -d 32 -c 40 -r 2 -t 1 --json");
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out.substr(out.find('{')));
  EXPECT_EQ(j["depth"], 32);
  EXPECT_EQ(j["n_prompt"], 8);
  EXPECT_EQ(j["n_gen"], 4);
  EXPECT_GT(j["pp_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["tg_tokens_per_s"].get<double>(), 0);
  EXPECT_EQ(j["tg_samples"].size(), 2u);
  // One more cached token does not fit: a clear error, not a failure inside a step.
  auto [err, rc2] = elm_cli("bench -m " + model + " -p 8 -n 4 -d 33 -c 40 -r 1 -t 1");
  EXPECT_NE(rc2, 0);
  EXPECT_NE(err.find("do not fit a context of 40"), std::string::npos) << err;
  // The table names the tests like llama-bench.
  auto [table, rc3] = elm_cli("bench -m " + model + " -p 8 -n 4 -d 16 -r 1 -t 1");
  ASSERT_EQ(rc3, 0) << table;
  EXPECT_NE(table.find("| pp8 @ d16"), std::string::npos) << table;
  EXPECT_NE(table.find("| tg4 @ d16"), std::string::npos) << table;
}
