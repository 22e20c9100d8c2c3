// The Jinja interpreter against Python's jinja2 in transformers' chat-template environment
// (tests/fixtures/jinja/cases.json, written by tools/fixtures/make_jinja_fixtures.py), and its own limits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "test_util.hpp"
#include "text/chat.hpp"
#include "text/jinja.hpp"

namespace hps::text::jinja {
namespace {

using test::message_of;
using ::testing::HasSubstr;

Dict context_of(const nlohmann::ordered_json& j) { return *from_json(j).dict; }

RenderOptions at(const std::string& iso) {
  RenderOptions o;
  std::tm t{};
  if (sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%d", &t.tm_year, &t.tm_mon, &t.tm_mday, &t.tm_hour, &t.tm_min, &t.tm_sec) != 6)
    throw std::runtime_error("bad time " + iso);
  t.tm_year -= 1900, t.tm_mon -= 1;
  std::mktime(&t);  // fills tm_wday / tm_yday for %a / %j
  o.now = t;
  return o;
}

std::string render(const std::string& src, const nlohmann::ordered_json& ctx = nlohmann::ordered_json::object()) {
  return Template(src, "t").render(context_of(ctx));
}

TEST(Jinja, MatchesJinja2InTransformersEnvironment) {
  const std::string dir = test::fixtures_dir() + "/jinja";
  const auto cases = nlohmann::ordered_json::parse(io::read_file(dir + "/cases.json"));
  ASSERT_GE(cases.size(), 100u);
  size_t rendered = 0, errors = 0;
  for (const auto& c : cases) {
    const std::string name = c["name"];
    const std::string src = c.contains("template_text") ? c["template_text"].get<std::string>()
                                                        : io::read_file(dir + "/templates/" + c["template"].get<std::string>());
    const RenderOptions opts = c.contains("now") ? at(c["now"]) : RenderOptions{};
    if (c.contains("expected")) {
      try {
        EXPECT_EQ(Template(src, name).render(context_of(c["context"]), opts), c["expected"].get<std::string>()) << name;
        ++rendered;
      } catch (const Error& e) {
        ADD_FAILURE() << name << ": " << e.what();
      }
      continue;
    }
    ++errors;
    std::string got;
    try {
      Template(src, name).render(context_of(c["context"]), opts);
      got = "<rendered without an error>";
    } catch (const Error& e) {
      got = e.what();
    }
    EXPECT_THAT(got, HasSubstr(name)) << "the error names the template";
    if (c["error_type"] == "TemplateError")  // raise_exception: the template's own words reach the user
      EXPECT_THAT(got, HasSubstr(c["error"].get<std::string>())) << name;
    else
      EXPECT_NE(got, "<rendered without an error>") << name;
  }
  EXPECT_GE(rendered, 80u);
  EXPECT_GE(errors, 5u);
}

// The published templates of the built-in formats render what the built-in renderers render.
TEST(Jinja, EqualsBuiltInRenderersOnTheirTemplates) {
  const auto cases = nlohmann::ordered_json::parse(io::read_file(test::fixtures_dir() + "/tokenizers/chat_cases.json"));
  ASSERT_GE(cases.size(), 8u);
  for (const auto& c : cases) {
    Dict ctx = context_of({{"messages", c["messages"]}, {"add_generation_prompt", true}, {"bos_token", ""}, {"eos_token", "</s>"}});
    const std::string got = Template(c["chat_template"].get<std::string>()).render(ctx);
    EXPECT_EQ(got, c["rendered"].get<std::string>()) << c["template"];
    std::vector<Message> m;
    for (const auto& x : c["messages"]) m.push_back({x["role"], x["content"]});
    EXPECT_EQ(got, render_prompt(detect_chat_template(c["chat_template"]), m)) << c["template"];
  }
}

TEST(Jinja, PrintsPythonValues) {
  EXPECT_EQ(render("{{ none }}|{{ true }}|{{ 1.0 }}|{{ 1e20 }}|{{ 0.1 + 0.2 }}|{{ 7 / 2 }}|{{ -7 // 2 }}|{{ -7 % 3 }}"),
            "None|True|1.0|1e+20|0.30000000000000004|3.5|-4|2");
  EXPECT_EQ(render("{{ [1, 'a', none] }}{{ {'k': \"it's\"} }}{{ (1,) }}"), "[1, 'a', None]{'k': \"it's\"}(1,)");
  EXPECT_EQ(float_repr(1e16), "1e+16");
  EXPECT_EQ(float_repr(123456789012345.0), "123456789012345.0");
  EXPECT_EQ(float_repr(1.5e-7), "1.5e-07");
  EXPECT_EQ(float_repr(0.0001), "0.0001");
}

TEST(Jinja, WhitespaceControlAndTrimBlocks) {
  EXPECT_EQ(render("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif %}"), "ab");
  EXPECT_EQ(render("x\n  {%+ if true %}y{% endif %}"), "x\n  y");
  EXPECT_EQ(render("{{ 'a' }}\n{# c #}\nb\n"), "a\nb");  // one trailing newline is dropped
}

TEST(Jinja, LoopScopingNamespaceAndMacros) {
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1, 2] %}{% set x = i %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(render("{% set ns = namespace(x=1) %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}"), "4");
  EXPECT_EQ(render("{% macro m(a, b='B') %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}{{ m(2, b=3) }}"), "[1B][23]");
  EXPECT_EQ(render("{% for x in [1, 2, 3, 4] if x is even %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %}"), "1/2,2/2");
}

TEST(Jinja, ErrorsNameTemplateAndLine) {
  EXPECT_THAT(message_of<ConfigError>([] { Template("a\n{% if %}", "tpl.jinja"); }), HasSubstr("tpl.jinja line 2"));
  EXPECT_THAT(message_of<ConfigError>([] { Template("{% for x in y %}", "t"); }), HasSubstr("never closed"));
  EXPECT_THAT(message_of<ConfigError>([] { Template("{% include 'x' %}", "t"); }), HasSubstr("unsupported"));
  EXPECT_THAT(message_of<InputError>([] { render("\n\n{{ raise_exception('roles must alternate') }}"); }),
              HasSubstr("t line 3: roles must alternate"));
  EXPECT_THAT(message_of<InputError>([] { render("{{ foo.bar.baz }}"); }), HasSubstr("'foo' is undefined"));
  EXPECT_THAT(message_of<InputError>([] { render("{{ 'x' | nosuch }}"); }), HasSubstr("no filter named 'nosuch'"));
  EXPECT_THAT(message_of<InputError>([] { render("{{ [1].append(2) }}"); }), HasSubstr("unsafe"));
}

// Hostile templates end in an error, never a hang, a stack overflow or unbounded memory.
TEST(Jinja, LimitsRunawayTemplates) {
  EXPECT_THAT(message_of<InputError>([] { render("{{ range(1000000) | length }}"); }), HasSubstr("Range too big"));
  EXPECT_THAT(message_of<InputError>([] { render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"); }), HasSubstr("nested deeper"));
  EXPECT_THAT(message_of<InputError>([] { render("{{ 'x' * 100000000000 }}"); }), HasSubstr("repetition"));
  RenderOptions small;
  small.max_output = 1000;
  EXPECT_THAT(message_of<InputError>([&] {
                Template("{% for i in range(100) %}{% for j in range(100) %}xx{% endfor %}{% endfor %}").render({}, small);
              }),
              HasSubstr("exceeds 1000 bytes"));
  EXPECT_THAT(message_of<ConfigError>([] { Template("{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}"); }),
              HasSubstr("nested"));
}

}  // namespace
}  // namespace hps::text::jinja
