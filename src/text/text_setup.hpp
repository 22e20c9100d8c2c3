// A model folder's text side in one call: its tokenizer and the chat format its prompts render with.
#pragma once

#include <string>

#include "text/chat.hpp"
#include "text/tokenizer.hpp"

namespace hps::text {

struct TextSetup {
  Tokenizer tok;
  ChatTemplate chat;
};

// The tokenizer in `tokenizer_dir` and its chat format: `chat_format` when given (a name), else the one its
// tokenizer_config.json chat_template is recognized as, else hh (choose_chat_template).
TextSetup load_text_setup(const std::string& tokenizer_dir, const std::string& chat_format);

}  // namespace hps::text
