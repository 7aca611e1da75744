// `elm chat` from the command line with speculative decoding: two turns of greedy replies (the second
// reusing the cached conversation, rolled back to the prefix its template shares) are word for word
// the replies without speculation, with a draft model and with prompt lookup; --verbose prints the
// speculative statistics of every reply.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "util.h"

using namespace elm::test;

TEST(CliChat, SpeculativeRepliesEqualPlainOnes) {
  ELM_REQUIRE_SHARED("models/ref-28m");
  ELM_REQUIRE_SHARED("models/ref-draft-14m");
  const std::string input = temp_dir() + "/chat-input.txt";
  std::ofstream(input) << "Tell me about the sea.\nAnd what of the ships?\n";
  const std::string chat = "chat -m " + shared("models/ref-28m") + " --temp 0 -n 16 -c 256 -t 2 -v";
  // The transcript without the lines whose timings differ from run to run.
  auto transcript = [](const std::string& out) {
    static const std::regex timings(R"((\[prompt: [^\]]*\]|speculative \([^\n]*)\n)");
    return std::regex_replace(out, timings, "");
  };
  const CliResult plain = run_elm(chat + " < " + input);
  ASSERT_EQ(plain.status, 0) << plain.output;
  const std::string draft = "--draft " + shared("models/ref-draft-14m") + " --draft-max 3 --draft-fixed";
  for (const std::string& spec : {draft, std::string("--lookup 2 --draft-fixed")}) {
    SCOPED_TRACE(spec);
    const CliResult r = run_elm(chat + " " + spec + " < " + input);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(transcript(r.output), transcript(plain.output));
    // One statistics line per reply, each counting its own drafts.
    static const std::regex stats(R"(speculative \((.*)\): acceptance [0-9.]+% \((\d+) of (\d+) drafted\))");
    int replies = 0;
    for (std::sregex_iterator m(r.output.begin(), r.output.end(), stats), end; m != end; ++m, ++replies) {
      EXPECT_EQ((*m)[1], spec == draft ? "draft model ref-draft-14m" : "lookup(2)") << m->str();
      EXPECT_GT(std::stoi((*m)[3]), 0) << m->str();
    }
    EXPECT_EQ(replies, 2) << r.output;
  }
}
