#include "text/chat.hpp"

#include "core/enum_names.hpp"
#include "core/error.hpp"
#include "text/jinja_pystr.hpp"
#include "text/tokenizer.hpp"
#include "text/utf8.hpp"

namespace hps::text {

namespace {
constexpr EnumNames<ChatFormat, 5> kChatFormats{{{"jinja", ChatFormat::jinja},
                                                 {"llama3", ChatFormat::llama3},
                                                 {"chatml", ChatFormat::chatml},
                                                 {"mistral", ChatFormat::mistral},
                                                 {"hh", ChatFormat::hh}}};
}  // namespace

const char* to_string(ChatFormat f) { return enum_name(f, kChatFormats).data(); }  // the table's names are literals
ChatFormat parse_chat_format(const std::string& s, std::string_view field) { return parse_enum(s, field, kChatFormats); }

ChatTemplate detect_chat_template(const std::string& t) {
  const std::string fix = " (choose a renderer with data.chat_format / --chat-format = llama3 | chatml | mistral | hh)";
  if (t.empty()) throw ConfigError("tokenizer_config.json has no chat_template" + fix);
  if (t.find("<|start_header_id|>") != std::string::npos) {
    // Llama-3.1+ templates always add a system block with "Cutting Knowledge Date" / "Today Date" lines (and
    // tool handling); the built-in llama3 renderer is the Llama-3.0 layout and would silently differ.
    if (t.find("Cutting Knowledge Date") != std::string::npos)
      throw ConfigError("this is a Llama-3.1+ chat_template (knowledge-date system block), which hps does not "
                        "reproduce; set data.chat_format / --chat-format = llama3 to use the Llama-3.0 layout knowingly");
    return {.format = ChatFormat::llama3};
  }
  if (t.find("[INST]") != std::string::npos) return {.format = ChatFormat::mistral};
  if (t.find("<|im_start|>") != std::string::npos) {
    // Qwen2-style templates write a literal default system turn: '<|im_start|>system\n…<|im_end|>'.
    ChatTemplate c{.format = ChatFormat::chatml};
    // Several occurrences may precede it (Qwen2.5's tools branch, the user-given system turn): take the first
    // whose body is a plain literal.
    const std::string open = "<|im_start|>system";
    for (size_t b = t.find(open); b != std::string::npos; b = t.find(open, b + 1)) {
      size_t start = b + open.size();
      if (t.compare(start, 2, "\\n") == 0) start += 2;       // "\n" inside a Jinja string literal
      else if (t.compare(start, 1, "\n") == 0) start += 1;   // a real newline
      const size_t e = t.find("<|im_end|>", start);
      if (e == std::string::npos) break;
      const std::string inner = t.substr(start, e - start);
      if (!inner.empty() && inner.find_first_of("'\"{}+") == std::string::npos) {  // a literal, not an expression
        c.default_system = inner;
        break;
      }
    }
    return c;
  }
  throw ConfigError("unrecognized chat_template (none of the Llama-3, ChatML or Mistral markers)" + fix);
}

namespace {

jinja::Value messages_value(const std::vector<Message>& m) {
  jinja::List out;
  for (const auto& x : m) {
    jinja::Dict d;
    d.items = {{"role", jinja::Value::string(x.role)}, {"content", jinja::Value::string(x.content)}};
    out.push_back(jinja::Value::make_dict(std::move(d)));
  }
  return jinja::Value::make_list(std::move(out));
}

std::string render_jinja(const ChatTemplate& t, const std::vector<Message>& m, bool add_generation_prompt) {
  jinja::Dict ctx = t.special_tokens;
  ctx.set("messages", messages_value(m));
  ctx.set("tools", jinja::Value::none());  // apply_chat_template always passes these two
  ctx.set("documents", jinja::Value::none());
  ctx.set("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
  return t.jinja->render(ctx);
}

}  // namespace

ChatTemplate jinja_chat_template(const TokenizerConfig& config, const std::string& where) {
  const std::string fix = " (or choose a built-in renderer with data.chat_format / --chat-format = llama3 | chatml | mistral | hh)";
  if (config.chat_template.empty()) throw ConfigError(where + " has no chat_template to render" + fix);
  ChatTemplate t;
  t.format = ChatFormat::jinja;
  try {
    t.jinja = std::make_shared<const jinja::Template>(config.chat_template, where + " chat_template");
  } catch (Error& e) {
    e.add_context("while reading the chat template" + fix);
    throw;
  }
  for (const auto& [key, value] : {std::pair{"bos_token", config.bos_token}, {"eos_token", config.eos_token}, {"pad_token", config.pad_token}})
    if (value) t.special_tokens.set(key, jinja::Value::string(*value));
  const std::string probe = "HPS-END-OF-TURN-PROBE";
  std::string text;
  try {
    text = render_jinja(t, {{"user", "Hi"}, {"assistant", probe}}, false);
  } catch (const Error& e) {
    throw ConfigError("the chat template cannot render a user/assistant exchange, so hps cannot tell what ends an "
                      "assistant turn: " + e.message() + fix);
  }
  const size_t at = text.rfind(probe);
  if (at == std::string::npos)
    throw ConfigError("the chat template drops the assistant's content of a user/assistant exchange, so hps "
                      "cannot tell what ends an assistant turn" + fix);
  t.end_of_turn = text.substr(at + probe.size());
  while (!t.end_of_turn.empty() && std::string_view(" \t\r\n").find(t.end_of_turn.back()) != std::string_view::npos)
    t.end_of_turn.pop_back();
  return t;
}

ChatTemplate choose_chat_template(const TokenizerConfig& config, const std::string& override, const std::string& where) {
  if (override == "jinja" || (override.empty() && !config.chat_template.empty())) return jinja_chat_template(config, where);
  if (!override.empty()) return {parse_chat_format(override), "", nullptr, {}, ""};
  return {ChatFormat::hh, "", nullptr, {}, ""};
}

namespace {

void check_turns(ChatFormat f, const std::vector<Message>& m) {
  if (m.empty()) throw InputError("chat prompt has no messages");
  for (size_t k = 0; k < m.size(); ++k)  // rendering decodes characters (llama3's | trim): it needs valid UTF-8
    if (const auto bad = find_invalid_utf8(m[k].content))
      throw InputError("chat message " + std::to_string(k) + ": invalid UTF-8 at byte offset " +
                       std::to_string(*bad) + " of its content");
  if (f == ChatFormat::jinja) {  // the template enforces its own turn rules
    if (m.back().role == "assistant") throw InputError("chat prompt ends with an assistant message (nothing left to answer)");
    return;
  }
  size_t i = m[0].role == "system" ? 1 : 0;
  if (i == 1 && f == ChatFormat::hh) throw InputError("the hh format has no system turn");
  // Mistral's published [INST] templates either reject a system turn (v0.1/v0.2) or place it differently by
  // version (v0.3, Nemo): refuse rather than guess.
  if (i == 1 && f == ChatFormat::mistral)
    throw InputError("the mistral [INST] format has no system turn (fold it into the first user message)");
  if (i >= m.size()) throw InputError("chat prompt has only a system message");
  for (size_t k = i; k < m.size(); ++k) {
    const char* want = (k - i) % 2 == 0 ? "user" : "assistant";
    if (m[k].role != want)
      throw InputError("chat message " + std::to_string(k) + " has role '" + m[k].role + "', expected '" + want +
                       "' (turns must alternate user/assistant after an optional system message)");
  }
  if (m.back().role != "user") throw InputError("chat prompt must end with a user message");
}

}  // namespace

std::string render_prompt(const ChatTemplate& t, const std::vector<Message>& m) {
  const ChatFormat f = t.format;
  check_turns(f, m);
  std::string out;
  if (f == ChatFormat::chatml && !t.default_system.empty() && m[0].role != "system")
    out = "<|im_start|>system\n" + t.default_system + "<|im_end|>\n";
  switch (f) {
    case ChatFormat::jinja: return render_jinja(t, m, true);
    case ChatFormat::llama3:
      for (const auto& x : m) out += "<|start_header_id|>" + x.role + "<|end_header_id|>\n\n" + jinja::py_strip(x.content, nullptr, true, true) + "<|eot_id|>";
      return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case ChatFormat::chatml:
      for (const auto& x : m) out += "<|im_start|>" + x.role + "\n" + x.content + "<|im_end|>\n";
      return out + "<|im_start|>assistant\n";
    case ChatFormat::mistral:
      for (const auto& x : m) out += x.role == "user" ? "[INST] " + x.content + " [/INST]" : x.content + "</s>";
      return out;
    case ChatFormat::hh:
      for (const auto& x : m) out += (x.role == "user" ? "\n\nHuman: " : "\n\nAssistant: ") + x.content;
      return out + "\n\nAssistant:";
  }
  return out;
}

std::string response_suffix(const ChatTemplate& t, const std::string& eos) {
  switch (t.format) {
    case ChatFormat::jinja: return t.end_of_turn;
    case ChatFormat::llama3: return "<|eot_id|>";
    case ChatFormat::chatml: return "<|im_end|>";
    case ChatFormat::mistral: return eos;
    case ChatFormat::hh: return "";
  }
  return "";
}

}  // namespace hps::text
