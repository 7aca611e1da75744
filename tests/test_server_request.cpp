// Request parsing for the server: every kind of bad input ends in an ApiError naming the field, valid
// requests keep every field, and the prompt formats and stop-string streaming behave as specified.
#include <gtest/gtest.h>

#include "runtime/text_stream.h"
#include "server/api_error.h"
#include "server/chat_prompt.h"
#include "server/request.h"
#include "server_fixtures.h"

using namespace elm;
using namespace elm::server;

namespace {

// The ApiError a parse throws (status and param), or a failure when it does not throw.
struct Rejection {
  int status = 0;
  std::string param, message;
};
template <class Fn>
Rejection rejection(Fn&& fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    return {e.status(), e.param(), e.what()};
  }
  ADD_FAILURE() << "no ApiError thrown";
  return {};
}
Rejection chat_rejection(const std::string& body) { return rejection([&] { parse_chat_request(body); }); }

const char* kHello = R"({"model": "m", "messages": [{"role": "user", "content": "hello"}]})";

}  // namespace

TEST(ServerRequest, Utf8ValidatorFindsTheFirstBadSequence) {
  EXPECT_EQ(find_invalid_utf8("plain ascii"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("\xC3\xA9t\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), std::string_view::npos);  // été € 😀
  EXPECT_EQ(find_invalid_utf8("ab\xFF"), 2u);                  // never a UTF-8 byte
  EXPECT_EQ(find_invalid_utf8("a\x80"), 1u);                   // stray continuation byte
  EXPECT_EQ(find_invalid_utf8("x\xC3"), 1u);                   // truncated two-byte sequence
  EXPECT_EQ(find_invalid_utf8("\xE2\x82"), 0u);                // truncated three-byte sequence
  EXPECT_EQ(find_invalid_utf8("\xC0\xAF"), 0u);                // overlong '/'
  EXPECT_EQ(find_invalid_utf8("\xE0\x80\xAF"), 0u);            // overlong '/' in three bytes
  EXPECT_EQ(find_invalid_utf8("ok\xED\xA0\x80"), 2u);          // UTF-16 surrogate D800
  EXPECT_EQ(find_invalid_utf8("\xF4\x90\x80\x80"), 0u);        // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("\xC3(\xA9"), 0u);               // lead byte followed by a non-continuation
}

TEST(ServerRequest, ChatRequestKeepsEveryField) {
  const ChatRequest r = parse_chat_request(R"({
    "model": "stories", "temperature": 0.5, "top_p": 0.9, "top_k": 12, "min_p": 0.1, "seed": 42,
    "max_tokens": 33, "stop": ["\n\n", "END"], "stream": true, "stream_options": {"include_usage": true},
    "presence_penalty": 0, "user": "someone", "logit_bias": null,
    "messages": [{"role": "system", "content": "be brief"},
                 {"role": "user", "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}]},
                 {"role": "assistant", "content": null}]})");
  EXPECT_EQ(r.model, "stories");
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "hello");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_FLOAT_EQ(*r.gen.temperature, 0.5f);
  EXPECT_FLOAT_EQ(*r.gen.top_p, 0.9f);
  EXPECT_EQ(*r.gen.top_k, 12);
  EXPECT_FLOAT_EQ(*r.gen.min_p, 0.1f);
  EXPECT_EQ(*r.gen.seed, 42u);
  EXPECT_EQ(*r.gen.max_tokens, 33);
  EXPECT_EQ(r.gen.stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_TRUE(r.gen.stream);
  EXPECT_TRUE(r.gen.include_usage);
}

TEST(ServerRequest, AbsentAndNullFieldsStayUnset) {
  const ChatRequest r = parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}], "temperature": null})");
  EXPECT_EQ(r.model, "");
  EXPECT_FALSE(r.gen.temperature || r.gen.top_p || r.gen.seed || r.gen.max_tokens);
  EXPECT_FALSE(r.gen.stream);
  // max_completion_tokens is the newer spelling; it wins over max_tokens.
  const ChatRequest m = parse_chat_request(
      R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "max_completion_tokens": 7})");
  EXPECT_EQ(*m.gen.max_tokens, 7);
}

TEST(ServerRequest, MalformedBodiesAreRejected) {
  // 4E444 overflows a double: nlohmann reports it as out_of_range, not as a parse error (found by fuzzing).
  for (const char* body : {"", "{", "not json", "{\"messages\": [}", "[1, 2]", "\"text\"", "null", "{\"a\":1} trailing",
                           "{\"max_tokens\": 4E444}"}) {
    const Rejection r = chat_rejection(body);
    EXPECT_EQ(r.status, 400) << body;
  }
  const Rejection u = chat_rejection("{\"messages\": [{\"role\": \"user\", \"content\": \"\xC3(\"}]}");
  EXPECT_EQ(u.status, 400);
  EXPECT_NE(u.message.find("UTF-8"), std::string::npos) << u.message;
}

TEST(ServerRequest, WrongTypesNameTheField) {
  struct Case {
    const char* field_json;
    const char* param;
  } cases[] = {
      {R"("temperature": "hot")", "temperature"}, {R"("temperature": 3)", "temperature"},
      {R"("top_p": 1.5)", "top_p"},               {R"("top_k": 2.5)", "top_k"},
      {R"("top_k": -1)", "top_k"},                {R"("max_tokens": 0)", "max_tokens"},
      {R"("max_tokens": "10")", "max_tokens"},    {R"("seed": "x")", "seed"},
      {R"("stop": 5)", "stop"},                   {R"("stop": ["a", 1])", "stop"},
      {R"("stream": "yes")", "stream"},           {R"("model": 7)", "model"},
      {R"("n": 2)", "n"},                         {R"("stream_options": 1)", "stream_options"},
  };
  for (const Case& c : cases) {
    const std::string body = std::string(R"({"messages": [{"role": "user", "content": "x"}], )") + c.field_json + "}";
    const Rejection r = chat_rejection(body);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(r.param, c.param) << body << ": " << r.message;
  }
}

TEST(ServerRequest, BadMessagesAreRejected) {
  EXPECT_EQ(chat_rejection(R"({"model": "m"})").param, "messages");
  EXPECT_EQ(chat_rejection(R"({"messages": []})").param, "messages");
  EXPECT_EQ(chat_rejection(R"({"messages": "hi"})").param, "messages");
  EXPECT_EQ(chat_rejection(R"({"messages": [3]})").param, "messages[0]");
  EXPECT_EQ(chat_rejection(R"({"messages": [{"content": "x"}]})").param, "messages[0].role");
  EXPECT_EQ(chat_rejection(R"({"messages": [{"role": "wizard", "content": "x"}]})").param, "messages[0].role");
  EXPECT_EQ(chat_rejection(R"({"messages": [{"role": "user", "content": 5}]})").param, "messages[0].content");
  EXPECT_EQ(chat_rejection(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})").param,
            "messages[0].content");
  EXPECT_NO_THROW(parse_chat_request(kHello));
}

TEST(ServerRequest, CompletionPromptForms) {
  EXPECT_EQ(parse_completion_request(R"({"prompt": "Once"})").prompt, "Once");
  EXPECT_EQ(parse_completion_request(R"({"prompt": ["Once"]})").prompt, "Once");
  EXPECT_EQ(parse_completion_request(R"({"prompt": [1, 403, 407]})").prompt_ids, (std::vector<int32_t>{1, 403, 407}));
  EXPECT_EQ(*parse_completion_request(R"({"prompt": "x"})").gen.max_tokens, 16);  // the API's default
  for (const char* bad : {R"({})", R"({"prompt": ""})", R"({"prompt": []})", R"({"prompt": [1, -2]})",
                          R"({"prompt": ["a", "b"]})", R"({"prompt": {"a": 1}})", R"({"prompt": "x", "suffix": "y"})"}) {
    const Rejection r = rejection([&] { parse_completion_request(bad); });
    EXPECT_EQ(r.status, 400) << bad;
  }
}

TEST(ServerRequest, SamplingPrecedenceRequestThenModelThenDefaults) {
  ModelInfo info;
  info.generation = {{"temperature", 0.6}, {"top_k", 20}};
  GenerationRequest g;
  g.top_k = 5;
  g.seed = 7;
  const SamplerConfig c = resolve_sampling(g, info);
  const SamplerConfig d;  // elm's defaults
  EXPECT_FLOAT_EQ(c.temperature, 0.6f);  // model
  EXPECT_EQ(c.top_k, 5);                 // request
  EXPECT_FLOAT_EQ(c.top_p, d.top_p);     // default
  EXPECT_EQ(c.seed, 7u);
  info.generation = {{"do_sample", false}};
  EXPECT_EQ(resolve_sampling({}, info).temperature, 0.0f);  // do_sample false = greedy
  EXPECT_NE(resolve_sampling({}, info).seed, resolve_sampling({}, info).seed);  // unpinned seeds differ
}

TEST(ServerPrompt, TranscriptFormatForModelsWithoutTemplate) {
  const std::vector<ChatMessage> msgs = {
      {"system", "Tell stories."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "A story please"}};
  EXPECT_EQ(transcript_prompt(msgs), "Tell stories.\n\nUser: Hi\nAssistant: Hello!\nUser: A story please\nAssistant:");
  EXPECT_EQ(transcript_prompt({{"user", "x"}}), "User: x\nAssistant:");
}

TEST(ServerPrompt, ChatNeedsATokenizer) {
  Model m;
  m.info.name = "bare";
  EXPECT_EQ(rejection([&] { build_chat_prompt(m, {{"user", "x"}}); }).status, 400);
  m.tokenizer = std::make_shared<elm::test::CharTokenizer>();
  const ChatPrompt p = build_chat_prompt(m, {{"user", "x"}});
  EXPECT_EQ(p.ids, m.tokenizer->encode("User: x\nAssistant:", true));
  EXPECT_EQ(p.stop, std::vector<std::string>{"\nUser:"});
}

// TextStream with one character per token: what is released when, and where stop strings cut.
TEST(ServerTextStream, HoldsBackPossibleStopStringsAndCutsAtThem) {
  elm::test::CharTokenizer tok;
  auto id = [](char c) { return int32_t(c) - 33; };
  TextStream s(&tok, {"XYZ", "Q"});
  EXPECT_FALSE(s.push(id('a')));
  EXPECT_EQ(s.take(), "a");
  EXPECT_FALSE(s.push(id('X')));
  EXPECT_EQ(s.take(), "");  // "X" may start "XYZ"
  EXPECT_FALSE(s.push(id('Y')));
  EXPECT_EQ(s.take(), "");
  EXPECT_FALSE(s.push(id('b')));  // "XYb" cannot become a stop string any more
  EXPECT_EQ(s.take(), "XYb");
  EXPECT_FALSE(s.push(id('X')));
  EXPECT_FALSE(s.push(id('Y')));
  EXPECT_TRUE(s.push(id('Z')));
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.take(), "");
  EXPECT_EQ(s.text(), "aXYb");
  EXPECT_TRUE(s.push(id('c')));  // nothing is added after a stop
  EXPECT_EQ(s.text(), "aXYb");

  TextStream t(&tok, {"XYZ"});
  t.push(id('a'));
  t.push(id('X'));
  t.finish();  // generation ended for another reason: the held-back "X" is released
  EXPECT_EQ(t.take(), "aX");

  TextStream single(&tok, {"Q"});
  EXPECT_TRUE(single.push(id('Q')));
  EXPECT_EQ(single.text(), "");
}
