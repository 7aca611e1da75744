// `elm bench` from the command line: --json output and --depth (tests that start with tokens cached,
// like llama-bench -d), including a depth that does not fit the context.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "util.h"

using namespace elm::test;

TEST(CliBench, JsonWithDepthAndContextCheck) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  const std::string model = shared("fixtures/tiny/llama");
  // 32 cached tokens + 8 test tokens fill a 40-token context exactly.
  const CliResult json_run = run_elm("bench -m " + model + " -p 8 -n 4 -d 32 -c 40 -r 2 -t 1 --json");
  ASSERT_EQ(json_run.status, 0) << json_run.output;
  const std::string& out = json_run.output;
  const nlohmann::json j = nlohmann::json::parse(out.substr(out.find('{')));
  EXPECT_EQ(j["depth"], 32);
  EXPECT_EQ(j["n_prompt"], 8);
  EXPECT_EQ(j["n_gen"], 4);
  EXPECT_GT(j["pp_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["tg_tokens_per_s"].get<double>(), 0);
  EXPECT_EQ(j["tg_samples"].size(), 2u);
  // One more cached token does not fit: a clear error, not a failure inside a step.
  const CliResult too_deep = run_elm("bench -m " + model + " -p 8 -n 4 -d 33 -c 40 -r 1 -t 1");
  EXPECT_NE(too_deep.status, 0);
  EXPECT_NE(too_deep.output.find("do not fit a context of 40"), std::string::npos) << too_deep.output;
  // The table names the tests like llama-bench.
  const CliResult table_run = run_elm("bench -m " + model + " -p 8 -n 4 -d 16 -r 1 -t 1");
  ASSERT_EQ(table_run.status, 0) << table_run.output;
  const std::string& table = table_run.output;
  EXPECT_NE(table.find("| pp8 @ d16"), std::string::npos) << table;
  EXPECT_NE(table.find("| tg4 @ d16"), std::string::npos) << table;
}
