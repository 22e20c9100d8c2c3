// Chat formats: render a prompt's messages as the text a model was trained on, ending with the header of
// the assistant turn to come, and the suffix that closes a response. By default the model's own
// chat_template, rendered by the Jinja interpreter (text/jinja.hpp) exactly as transformers'
// apply_chat_template(add_generation_prompt=True) renders it; `data.chat_format` names a built-in renderer
// instead:
//
//   llama3   <|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|> … <|start_header_id|>assistant<|end_header_id|>\n\n
//   chatml   <|im_start|>{role}\n{content}<|im_end|>\n … <|im_start|>assistant\n          (Qwen2)
//   mistral  [INST] {user} [/INST]{assistant}</s> … [INST] {user} [/INST]       (no system turn)
//   hh       \n\nHuman: {user}\n\nAssistant: {assistant} … \n\nAssistant:                 (raw HH-RLHF transcripts)
// The built-in renderers do not render BOS: the tokenizer's post-processor adds it when the prompt is
// encoded. A Jinja template places BOS itself (`{{ bos_token }}`), so its prompt is encoded without the
// post-processor's special tokens, as apply_chat_template(tokenize=True) does.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "text/jinja.hpp"

namespace hps::text {

// One turn of a conversation: role (system | user | assistant) and its text.
struct Message {
  std::string role, content;
};

struct TokenizerConfig;

enum class ChatFormat { jinja, llama3, chatml, mistral, hh };

struct ChatTemplate {
  ChatFormat format = ChatFormat::hh;
  // A system message the template inserts when the conversation has none (Qwen2's "You are a helpful
  // assistant."), read from the template text; empty when it inserts none.
  std::string default_system;
  // format == jinja: the model's template, the special tokens it is rendered with (bos_token, eos_token,
  // pad_token, as apply_chat_template passes them), and what it writes after an assistant message.
  std::shared_ptr<const jinja::Template> jinja;
  jinja::Dict special_tokens;
  std::string end_of_turn;
};

const char* to_string(ChatFormat f);
ChatFormat parse_chat_format(const std::string& s, std::string_view field = "data.chat_format");  // ConfigError listing the choices

// Recognizes a Jinja chat_template by its markers (and a ChatML default system message); throws ConfigError
// naming the `data.chat_format` override when the template is empty or unknown.
ChatTemplate detect_chat_template(const std::string& chat_template);

// The model's own template through the Jinja interpreter. Its end of turn is found by rendering a probe
// exchange [user, assistant] without the generation prompt: what follows the assistant's content, with
// trailing whitespace dropped (sampling stops at the end-of-turn token, so a sampled response never
// contains the newline some templates write after it). ConfigError when the template does not parse or
// cannot render that exchange.
ChatTemplate jinja_chat_template(const TokenizerConfig& config, const std::string& where);

// The renderer to use: `override` when given (a built-in name, or `jinja` for the model's template), else
// the tokenizer's own chat_template rendered by Jinja, else hh (no template: raw transcripts).
ChatTemplate choose_chat_template(const TokenizerConfig& config, const std::string& override,
                                  const std::string& where = "the tokenizer");

// The prompt text up to the start of the assistant's reply. Built-in formats: messages alternate
// user/assistant after an optional leading system message (InputError otherwise, or for a system message
// in hh / a trailing assistant turn). Jinja: the template's own rules (raise_exception), and the prompt
// must not end with an assistant turn.
std::string render_prompt(const ChatTemplate& t, const std::vector<Message>& messages);
// Whether the rendered prompt already holds its special tokens (Jinja templates write BOS themselves).
inline bool renders_special_tokens(const ChatTemplate& t) { return t.format == ChatFormat::jinja; }
// What closes a response: the template's end of turn (jinja), "<|eot_id|>", "<|im_end|>", `eos` for
// mistral, nothing for hh.
std::string response_suffix(const ChatTemplate& t, const std::string& eos);

}  // namespace hps::text
