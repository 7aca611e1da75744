// The Jinja interpreter, feature by feature. Expected strings are what Jinja2 (with transformers'
// settings: trim_blocks, lstrip_blocks) renders for the same template.
#include <gtest/gtest.h>

#include "chat/chat.h"
#include "chat/chat_template.h"
#include "core/error.h"

namespace elm {
namespace {

using ojson = nlohmann::ordered_json;

std::string render(const std::string& tmpl, const ojson& vars = ojson::object(), const ojson& messages = ojson::array()) {
  return ChatTemplate(tmpl).render(messages, vars);
}

TEST(Jinja, TextAndExpressions) {
  EXPECT_EQ(render("plain text"), "plain text");
  EXPECT_EQ(render("{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ 2 ** 10 }}"), "7|9|3|-4|1|1024");
  EXPECT_EQ(render("{{ 7 / 2 }}|{{ 1.5 + 1 }}|{{ 4 / 2 }}"), "3.5|2.5|2.0");
  EXPECT_EQ(render("{{ 'a' + 'b' }}{{ 'x' ~ 1 ~ none }}{{ 'ab' * 3 }}"), "abx1Noneababab");
  EXPECT_EQ(render("{{ \"q\\\"uote\\n\" }}"), "q\"uote\n");
  EXPECT_EQ(render("{{ true }} {{ false }} {{ none }} {{ undefined_name }}."), "True False None .");
  EXPECT_EQ(render("{{ [1, 'a', none, true] }} {{ {'k': 'v', 'n': 1.0} }}"), "[1, 'a', None, True] {'k': 'v', 'n': 1.0}");
  EXPECT_EQ(render("{{ 1 if x else 2 }}{{ 'y' if not x }}", {{"x", false}}), "2y");
  EXPECT_EQ(render("{{ 1 < 2 and 2 <= 2 and 3 > 2 and 'a' != 'b' and not (1 == 2) }}"), "True");
  EXPECT_EQ(render("{{ x or 'default' }}|{{ 0 and 5 }}"), "default|0");
  EXPECT_EQ(render("{{ 'b' in 'abc' }}{{ 2 in [1, 2] }}{{ 'k' in {'k': 1} }}{{ 3 not in [1] }}"), "TrueTrueTrueTrue");
  EXPECT_EQ(render("{{ m.a.b }}{{ m['a']['b'] }}{{ l[0] }}{{ l[-1] }}{{ l[5] }}", {{"m", {{"a", {{"b", "x"}}}}}, {"l", {1, 2, 3}}}),
            "xx13");
  EXPECT_EQ(render("{{ l[1:] }}{{ l[::-1] }}{{ l[:-1] }}{{ 'hello'[1:3] }}", {{"l", {1, 2, 3}}}), "[2, 3][3, 2, 1][1, 2]el");
  EXPECT_EQ(render("{{ '%s and %d' % ('x', 3) }}"), "x and 3");
}

TEST(Jinja, WhitespaceControl) {
  // trim_blocks removes the newline after a block tag, lstrip_blocks the indentation before one.
  EXPECT_EQ(render("{% if true %}\n  yes\n{% endif %}\nend"), "  yes\nend");
  EXPECT_EQ(render("a\n    {% if true %}\nb\n    {% endif %}\nc"), "a\nb\nc");
  EXPECT_EQ(render("a   {{- ' b ' -}}   c"), "a b c");
  EXPECT_EQ(render("x\n{%- if true -%}\n  y  \n{%- endif %}"), "xy");
  EXPECT_EQ(render("{{ 'v' }}\nnext"), "v\nnext");  // expression tags keep their newline
  EXPECT_EQ(render("a{# comment #}b\n  {# own line #}\nc"), "ab\nc");
  EXPECT_EQ(render("{% raw %}{{ not evaluated }}{% endraw %}"), "{{ not evaluated }}");
}

TEST(Jinja, Loops) {
  const ojson v = {{"items", {"a", "b", "c"}}};
  EXPECT_EQ(render("{% for x in items %}{{ loop.index }}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}", v), "1a,2b,3c");
  EXPECT_EQ(render("{% for x in items %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.length }} {% endfor %}", v),
            "03True3 12False3 21False3 ");
  EXPECT_EQ(render("{% for x in items %}{{ loop.previtem }}>{{ x }}>{{ loop.nextitem }} {% endfor %}", v), ">a>b a>b>c b>c> ");
  EXPECT_EQ(render("{% for x in items if x != 'b' %}{{ x }}{{ loop.index }}{% endfor %}", v), "a1c2");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {{"d", {{"z", 1}, {"a", 2}}}}), "z=1;a=2;");
  EXPECT_EQ(render("{% for x in items %}{% if x == 'b' %}{% continue %}{% endif %}{% if x == 'c' %}{% break %}{% endif %}{{ x }}{% endfor %}", v),
            "a");
  EXPECT_EQ(render("{% for x in items %}{{ loop.cycle('o', 'e') }}{% endfor %}", v), "oeo");
  EXPECT_EQ(render("{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}"), "012135");
  // A set inside a loop does not leak out of it; a namespace does.
  EXPECT_EQ(render("{% set n = 0 %}{% for x in items %}{% set n = n + 1 %}{% endfor %}{{ n }}", v), "0");
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for x in items %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}", v), "3");
}

TEST(Jinja, SetMacroCallFilterBlocks) {
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(render("{% set x %}inner {{ 1 }}{% endset %}[{{ x }}]"), "[inner 1]");
  EXPECT_EQ(render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }}"),
            "Hi A! Hi B?");
  EXPECT_EQ(render("{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}body{% endcall %}"), "<body>");
  EXPECT_EQ(render("{% filter upper %}shout{% endfilter %}"), "SHOUT");
  EXPECT_EQ(render("{% generation %}kept{% endgeneration %}"), "kept");
  EXPECT_EQ(render("{% if a %}1{% elif b %}2{% else %}3{% endif %}", {{"b", true}}), "2");
}

TEST(Jinja, Filters) {
  EXPECT_EQ(render("{{ '  x  ' | trim }}|{{ 'ab' | upper }}|{{ 'AB' | lower }}|{{ 'hello world' | title }}|{{ 'hi there' | capitalize }}"),
            "x|AB|ab|Hello World|Hi there");
  EXPECT_EQ(render("{{ [1, 2, 3] | length }}{{ 'h\xC3\xA9' | length }}{{ {'a': 1} | count }}"), "321");
  EXPECT_EQ(render("{{ [3, 1, 2] | sort }}{{ [3, 1, 2] | sort(reverse=true) }}{{ [1, 1, 2] | unique | list }}"), "[1, 2, 3][3, 2, 1][1, 2]");
  EXPECT_EQ(render("{{ [1, 2] | first }}{{ [1, 2] | last }}{{ [1, 2] | reverse | join('-') }}{{ 'ab' | reverse }}"), "122-1ba");
  EXPECT_EQ(render("{{ x | default('d') }}{{ '' | default('e', true) }}{{ 'v' | default('f') }}"), "dev");
  EXPECT_EQ(render("{{ 'a-b-a' | replace('a', 'x') }}{{ '3' | int + 1 }}{{ '2.5' | float }}{{ -3 | abs }}{{ 2.567 | round(1) }}"),
            "x-b-x42.532.6");
  const ojson people = {{"p", {{{"n", "a"}, {"age", 3}}, {{"n", "b"}, {"age", 1}}}}};
  EXPECT_EQ(render("{{ p | map(attribute='n') | join(',') }}|{{ p | selectattr('age', 'gt', 2) | map(attribute='n') | list }}", people),
            "a,b|['a']");
  EXPECT_EQ(render("{{ p | sort(attribute='age') | map(attribute='n') | join }}{{ p | rejectattr('n', 'equalto', 'a') | list | length }}", people),
            "ba1");
  EXPECT_EQ(render("{{ [1, 2, 3, 4] | select('even') | list }}{{ [0, 1, none] | select | list }}{{ [1, 2] | sum }}"), "[2, 4][1]3");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2} | dictsort }}{{ {'k': 'v'} | items | list }}"), "[['a', 2], ['b', 1]][['k', 'v']]");
  EXPECT_EQ(render("{{ 'a\nb' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}"), "a\n  b|  a\n  b");
  EXPECT_EQ(render("{{ ['x', 'y'] | map('upper') | join }}{{ 'one two  three' | wordcount }}"), "XY3");
}

TEST(Jinja, ToJsonLikePython) {
  // json.dumps(ensure_ascii=False): ", " and ": " separators, key order kept, Unicode as is.
  const ojson v = {{"t", {{"type", "function"}, {"f", {{"name", "x"}, {"req", {"a", "b"}}, {"n", nullptr}, {"ok", true}, {"pi", 0.5}}}}},
                   {"s", "caf\xC3\xA9 \"q\" \\ \n\t\x01"}};
  EXPECT_EQ(render("{{ t | tojson }}", v),
            R"({"type": "function", "f": {"name": "x", "req": ["a", "b"], "n": null, "ok": true, "pi": 0.5}})");
  EXPECT_EQ(render("{{ s | tojson }}", v), "\"caf\xC3\xA9 \\\"q\\\" \\\\ \\n\\t\\u0001\"");
  EXPECT_EQ(render("{{ {'a': [1, {}], 'b': []} | tojson(indent=2) }}"), "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"), R"({"a": 2, "b": 1})");
  EXPECT_EQ(render("{{ [1e-05, 1e16, 0.1, 100.0, 3] | tojson }}"), "[1e-05, 1e+16, 0.1, 100.0, 3]");
}

TEST(Jinja, Tests) {
  EXPECT_EQ(render("{{ x is defined }}{{ y is undefined }}{{ none is none }}{{ 'a' is string }}{{ 1 is number }}{{ 1 is integer }}"),
            "FalseTrueTrueTrueTrueTrue");
  EXPECT_EQ(render("{{ {} is mapping }}{{ [] is iterable }}{{ 'a' is iterable }}{{ 1 is iterable }}{{ 4 is even }}{{ 3 is odd }}"),
            "TrueTrueTrueFalseTrueTrue");
  EXPECT_EQ(render("{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(2) }}{{ x is not defined }}{{ false is false }}{{ 0 is false }}"),
            "TrueFalseTrueTrueFalse");
  EXPECT_EQ(render("{{ 1 is eq 1 }}{{ 2 is gt(1) }}{{ 'a' is in ['a'] }}{{ none is sameas none }}{{ 'ab' is lower }}"),
            "TrueTrueTrueTrueTrue");
}

TEST(Jinja, StringListDictMethods) {
  EXPECT_EQ(render("{{ ' x '.strip() }}|{{ '\nx\n'.lstrip('\n') }}|{{ 'xyy'.rstrip('y') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}"),
            "x|x\n|x|['a', 'b', '', 'c']|['a', 'b']");
  EXPECT_EQ(render("{{ 'a</think>b'.split('</think>')[-1] }}{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}"), "bTrueTrue");
  EXPECT_EQ(render("{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}{{ 'a b'.title() }}{{ 'aXa'.replace('a', '') }}{{ 'abcb'.find('b') }}{{ 'abab'.count('ab') }}"),
            "ABabA BX12");
  EXPECT_EQ(render("{{ '-'.join(['a', 'b']) }}{{ 'x\ny'.splitlines() }}{{ '{} and {}'.format(1, 'two') }}"), "a-b['x', 'y']1 and two");
  EXPECT_EQ(render("{% set l = [1] %}{% do l.append(2) %}{{ l }}{{ l.pop() }}{{ l }}{{ [5, 6].index(6) }}"), "[1, 2]2[1]1");
  EXPECT_EQ(render("{% set d = {'a': 1} %}{{ d.get('a') }}{{ d.get('z', 'no') }}{{ d.keys() | list }}{{ d.values() | list }}"), "1no['a'][1]");
}

TEST(Jinja, MessagesAndGlobals) {
  const ojson msgs = ojson::array({{{"role", "user"}, {"content", "hi"}}, {{"role", "assistant"}, {"content", "yo"}}});
  EXPECT_EQ(render("{% for m in messages %}{{ m.role }}:{{ m['content'] }};{% endfor %}{% if add_generation_prompt %}A:{% endif %}",
                   {{"add_generation_prompt", true}}, msgs),
            "user:hi;assistant:yo;A:");
  EXPECT_EQ(render("{{ dict(a=1, b='x') | tojson }}"), R"({"a": 1, "b": "x"})");
  EXPECT_EQ(render("{{ strftime_now('%Y') | length }}"), "4");
}

TEST(Jinja, Errors) {
  const auto fails = [](const std::string& tmpl, const std::string& needle) {
    try {
      render(tmpl);
      ADD_FAILURE() << "expected an error from " << tmpl;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  fails("{{ raise_exception('roles must alternate') }}", "roles must alternate");
  fails("line1\n{% if x %}", "line 2");
  fails("{% for x in %}{% endfor %}", "line 1");
  fails("{{ 1 + }}", "line 1");
  fails("{{ 'unterminated }}", "unclosed");
  fails("{% if 'unterminated %}{% endif %}", "unterminated");
  fails("{% endfor %}", "unexpected tag");
  fails("{{ x | no_such_filter }}", "unknown filter");
  fails("{{ 1 is no_such_test }}", "unknown test");
  fails("{{ 1 / 0 }}", "division by zero");
  fails("{{ 'a' * 100000000000 }}", "too large");
  fails("{% set x = 1 %}{% set x.y = 2 %}", "not a namespace");
  fails("{{ " + std::string(1000, '(') + " }}", "nested too deeply");
  fails("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion");
  fails("{{ 1 }", "unclosed");
}

TEST(Chat, FallbackTemplateIsChatML) {
  Model m;  // no template, no tokenizer
  ChatRequest r;
  r.messages = ojson::array({{{"role", "system"}, {"content", "S"}}, {{"role", "user"}, {"content", "U"}}});
  EXPECT_EQ(render_chat(m, r), "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
  r.add_generation_prompt = false;
  EXPECT_EQ(render_chat(m, r), "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n");
  EXPECT_THROW(tokenize_chat(m, r), Error);  // no tokenizer
}

}  // namespace
// Integers past int64 become floats instead of overflowing (Python's would grow); powers of -1, 0 and 1
// finish at once whatever the exponent (found by fuzzing).
TEST(Jinja, IntegerOverflowTurnsToFloat) {
  EXPECT_EQ(render("{{ 555555555555 * 555555555555 > 0 }}"), "True");
  EXPECT_EQ(render("{{ 9223372036854775807 + 1 >= 9223372036854775807 }}"), "True");
  EXPECT_EQ(render("{{ (-1) ** 1000000000000 }}|{{ 0 ** 0 }}|{{ 2 ** 10 }}"), "1|1|1024");
  EXPECT_EQ(render("{{ 2 ** 70 > 10 ** 20 }}"), "True");
}

}  // namespace elm
