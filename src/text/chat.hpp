// Chat formats: render a prompt's messages as the text a model was trained on, ending with the header of
// the assistant turn to come, and the suffix that closes a response. Built-in renderers (no Jinja), chosen
// by recognizing tokenizer_config.json's chat_template or by the `data.chat_format` override.
//
//   llama3   <|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|> … <|start_header_id|>assistant<|end_header_id|>\n\n
//   chatml   <|im_start|>{role}\n{content}<|im_end|>\n … <|im_start|>assistant\n          (Qwen2)
//   mistral  [INST] {user} [/INST]{assistant}</s> … [INST] {user} [/INST]       (no system turn)
//   hh       \n\nHuman: {user}\n\nAssistant: {assistant} … \n\nAssistant:                 (raw HH-RLHF transcripts)
// BOS is not rendered: the tokenizer's post-processor adds it when the prompt is encoded.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hps::text {

// One turn of a conversation: role (system | user | assistant) and its text.
struct Message {
  std::string role, content;
};

enum class ChatFormat { llama3, chatml, mistral, hh };

struct ChatTemplate {
  ChatFormat format = ChatFormat::hh;
  // A system message the template inserts when the conversation has none (Qwen2's "You are a helpful
  // assistant."), read from the template text; empty when it inserts none.
  std::string default_system;
};

const char* to_string(ChatFormat f);
ChatFormat parse_chat_format(const std::string& s, std::string_view field = "data.chat_format");  // ConfigError listing the choices

// Recognizes a Jinja chat_template by its markers (and a ChatML default system message); throws ConfigError
// naming the `data.chat_format` override when the template is empty or unknown.
ChatTemplate detect_chat_template(const std::string& chat_template);

// The renderer to use: `override` when given (a chat format name), else the one the tokenizer's
// chat_template is recognized as, else hh (no template: raw transcripts).
ChatTemplate choose_chat_template(const std::string& tokenizer_chat_template, const std::string& override);

// The prompt text up to the start of the assistant's reply. Messages alternate user/assistant after an
// optional leading system message (InputError otherwise, or for a system message in hh / a trailing
// assistant turn).
std::string render_prompt(const ChatTemplate& t, const std::vector<Message>& messages);
// What closes a response in this format ("<|eot_id|>", "<|im_end|>", `eos` for mistral, nothing for hh).
std::string response_suffix(ChatFormat f, const std::string& eos);

}  // namespace hps::text
