// Chat renderers against the published templates rendered by jinja2 (tests/fixtures/tokenizers/chat_cases.json).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "test_util.hpp"
#include "text/chat.hpp"
#include "text/text_setup.hpp"
#include "text/tokenizer.hpp"

namespace hps::text {
namespace {

using test::message_of;

std::vector<text::Message> messages(const nlohmann::json& j) {
  std::vector<text::Message> out;
  for (const auto& m : j) out.push_back({m["role"], m["content"]});
  return out;
}

TEST(Chat, RenderersMatchPublishedTemplates) {
  const auto cases = io::read_json_file(test::fixtures_dir() + "/tokenizers/chat_cases.json");
  ASSERT_GE(cases.size(), 8u);
  for (const auto& c : cases) {
    const ChatTemplate t = detect_chat_template(c["chat_template"]);
    EXPECT_EQ(to_string(t.format), c["template"].get<std::string>());
    EXPECT_EQ(render_prompt(t, messages(c["messages"])), c["rendered"].get<std::string>()) << c["template"];
  }
}

TEST(Chat, DetectsQwenDefaultSystemAndFixtureTemplates) {
  const auto cases = io::read_json_file(test::fixtures_dir() + "/tokenizers/chat_cases.json");
  for (const auto& c : cases)
    if (c["template"] == "chatml") EXPECT_EQ(detect_chat_template(c["chat_template"]).default_system, "You are a helpful assistant.");
  auto tok = Tokenizer::from_dir(test::fixtures_dir() + "/tokenizers/qwen2");
  EXPECT_EQ(detect_chat_template(tok.config().chat_template).format, ChatFormat::chatml);
  EXPECT_EQ(render_prompt({ChatFormat::hh, ""}, {{"user", "hi"}, {"assistant", "yo"}, {"user", "bye"}}),
            "\n\nHuman: hi\n\nAssistant: yo\n\nHuman: bye\n\nAssistant:");
}

TEST(Chat, Qwen25StyleDefaultSystemAfterATemplatedOne) {
  // Qwen2.5 writes "<|im_start|>system\n" first in its tools branch and as an expression for a given system
  // turn; the literal default comes third.
  const std::string t =
      "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- else %}{%- if messages[0]['role'] == 'system' %}"
      "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}"
      "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
      "{%- endif %}{%- endif %}";
  EXPECT_EQ(detect_chat_template(t).default_system, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
}

TEST(Chat, Llama3TrimIsUnicodeStrip) {
  EXPECT_EQ(render_prompt({ChatFormat::llama3, ""}, {{"user", "\u3000 hi\u00a0\n"}}),
            "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

// Found by fuzz_chat: trailing 0xFF bytes sent llama3's trim past the end of the content (heap overflow).
TEST(Chat, InvalidUtf8ContentIsANamedError) {
  for (ChatFormat f : {ChatFormat::llama3, ChatFormat::chatml, ChatFormat::mistral, ChatFormat::hh})
    EXPECT_THAT(message_of<InputError>([f] { render_prompt({f, ""}, {{"user", "What is 2+2?\xff\xff\xff"}}); }),
                ::testing::HasSubstr("chat message 0: invalid UTF-8 at byte offset 12"));
}

// Where the template lives: chat_template.jinja (transformers 5) wins over tokenizer_config.json, whose value may
// be a list of named templates; no template at all falls back to hh with a warning, never silently.
TEST(Chat, TemplateFromItsFileOrANamedListAndAWarnedFallback) {
  test::TempDir dir;
  const std::string src = test::fixtures_dir() + "/tokenizers/qwen2";
  io::copy_file(src + "/tokenizer.json", dir.str("tokenizer.json"));
  auto cfg = io::read_json_file(src + "/tokenizer_config.json");
  const std::string chatml = cfg["chat_template"];
  cfg.erase("chat_template");
  io::write_json_file(dir.str("tokenizer_config.json"), cfg);
  auto none = load_text_setup(dir.str(), "");
  EXPECT_EQ(none.chat.format, ChatFormat::hh);
  EXPECT_THAT(none.warning, ::testing::HasSubstr("has no chat template"));
  EXPECT_TRUE(load_text_setup(dir.str(), "chatml").warning.empty()) << "an explicit format needs no warning";
  cfg["chat_template"] = {{{"name", "tool_use"}, {"template", "{{ tools }}"}}, {{"name", "default"}, {"template", chatml}}};
  io::write_json_file(dir.str("tokenizer_config.json"), cfg);
  EXPECT_EQ(load_text_setup(dir.str(), "").chat.format, ChatFormat::jinja);
  EXPECT_EQ(render_prompt(load_text_setup(dir.str(), "").chat, {{"user", "Hi"}}), render_prompt({ChatFormat::chatml, ""}, {{"user", "Hi"}}))
      << "the named 'default' template is the one rendered";
  cfg.erase("chat_template");
  io::write_json_file(dir.str("tokenizer_config.json"), cfg);
  io::write_file_atomic(dir.str("chat_template.jinja"), [&](std::ostream& o) { o << chatml; });
  const auto from_file = load_text_setup(dir.str(), "");
  EXPECT_EQ(from_file.chat.format, ChatFormat::jinja);
  EXPECT_TRUE(from_file.warning.empty());
}

// The default is the model's own template, rendered by the Jinja interpreter: for Qwen2's ChatML template
// the prompt and the end of turn are those of the built-in chatml renderer, BOS is the template's business.
TEST(Chat, OwnTemplateIsTheDefault) {
  auto tok = Tokenizer::from_dir(test::fixtures_dir() + "/tokenizers/qwen2");
  TokenizerConfig cfg = tok.config();
  for (const auto& c : io::read_json_file(test::fixtures_dir() + "/tokenizers/chat_cases.json"))
    if (c["template"] == "chatml") cfg.chat_template = c["chat_template"];  // Qwen2-7B-Instruct's
  const ChatTemplate t = choose_chat_template(cfg, "");
  ASSERT_EQ(t.format, ChatFormat::jinja);
  const std::vector<Message> m{{"user", "Hi"}, {"assistant", "Hello."}, {"user", "2+2?"}};
  EXPECT_EQ(render_prompt(t, m), render_prompt({ChatFormat::chatml, "You are a helpful assistant."}, m));
  EXPECT_EQ(response_suffix(t, "<|endoftext|>"), "<|im_end|>") << "trailing newline of the template dropped";
  EXPECT_TRUE(renders_special_tokens(t));
  EXPECT_EQ(choose_chat_template(cfg, "chatml").format, ChatFormat::chatml) << "a built-in name overrides";
  EXPECT_EQ(choose_chat_template(cfg, "jinja").format, ChatFormat::jinja);
}

// Templates the built-in renderers refused render now: Llama-3.1's knowledge-date system block.
TEST(Chat, Llama31TemplateRenders) {
  TokenizerConfig cfg;
  cfg.chat_template = io::read_file(test::fixtures_dir() + "/jinja/templates/llama31.jinja");
  cfg.bos_token = "<|begin_of_text|>";
  cfg.eos_token = "<|eot_id|>";
  const ChatTemplate t = choose_chat_template(cfg, "");
  const std::string p = render_prompt(t, {{"user", "Hi"}});
  EXPECT_THAT(p, ::testing::StartsWith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date"));
  EXPECT_THAT(p, ::testing::EndsWith("<|start_header_id|>assistant<|end_header_id|>\n\n"));
  EXPECT_EQ(response_suffix(t, "<|eot_id|>"), "<|eot_id|>");
}

TEST(Chat, TemplateErrorsNameTheOverride) {
  TokenizerConfig cfg;
  cfg.chat_template = "{% for m in messages %}{{ m.content }";
  EXPECT_THAT(message_of<ConfigError>([&] { choose_chat_template(cfg, "", "model/x"); }),
              ::testing::AllOf(::testing::HasSubstr("model/x chat_template line 1"), ::testing::HasSubstr("data.chat_format")));
  cfg.chat_template = "{{ raise_exception('only single-turn prompts') }}";
  EXPECT_THAT(message_of<ConfigError>([&] { choose_chat_template(cfg, ""); }),
              ::testing::AllOf(::testing::HasSubstr("cannot render a user/assistant exchange"), ::testing::HasSubstr("only single-turn")));
  cfg.chat_template = "{% for m in messages if m.role == 'user' %}{{ m.content }}{% endfor %}";
  EXPECT_THAT(message_of<ConfigError>([&] { choose_chat_template(cfg, ""); }), ::testing::HasSubstr("drops the assistant's content"));
  cfg.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}";
  EXPECT_THAT(message_of<InputError>([&] { render_prompt(choose_chat_template(cfg, ""), {{"user", "u"}, {"assistant", "a"}}); }),
              ::testing::HasSubstr("ends with an assistant message"));
  EXPECT_THAT(message_of<ConfigError>([] { choose_chat_template(TokenizerConfig{}, "jinja"); }), ::testing::HasSubstr("no chat_template"));
}

TEST(Chat, ErrorsNameTheOverride) {
  EXPECT_THAT(message_of<ConfigError>([] { detect_chat_template("<|start_header_id|>… Cutting Knowledge Date: …"); }),
              ::testing::HasSubstr("Llama-3.1+"));
  EXPECT_THAT(message_of<InputError>([] { render_prompt({ChatFormat::mistral, ""}, {{"system", "s"}, {"user", "u"}}); }),
              ::testing::HasSubstr("no system turn"));
  EXPECT_THAT(message_of<ConfigError>([] { detect_chat_template(""); }), ::testing::HasSubstr("data.chat_format"));
  EXPECT_THAT(message_of<ConfigError>([] { detect_chat_template("{{ messages }}"); }),
              ::testing::HasSubstr("unrecognized chat_template"));
  EXPECT_THAT(message_of<ConfigError>([] { parse_chat_format("vicuna"); }), ::testing::HasSubstr("llama3, chatml"));
  EXPECT_THAT(message_of<InputError>([] { render_prompt({ChatFormat::llama3, ""}, {{"assistant", "x"}}); }),
              ::testing::HasSubstr("expected 'user'"));
  EXPECT_THAT(message_of<InputError>([] { render_prompt({ChatFormat::hh, ""}, {{"system", "s"}, {"user", "u"}}); }),
              ::testing::HasSubstr("no system turn"));
}

}  // namespace
}  // namespace hps::text
