// A model folder's text side in one call: its tokenizer and the chat format its prompts render with.
#pragma once

#include <string>

#include "text/chat.hpp"
#include "text/tokenizer.hpp"

namespace hps::text {

struct TextSetup {
  Tokenizer tok;
  ChatTemplate chat;
  std::string warning;  // non-empty when the format is a fallback the caller must say (no template at all)
};

// The tokenizer in `tokenizer_dir` and its chat format: `chat_format` when given (a name), else its own
// chat_template (chat_template.jinja, or tokenizer_config.json's) rendered by the Jinja interpreter, else hh —
// with a warning, since an instruct model prompted as an HH transcript trains and samples wrongly without a word.
TextSetup load_text_setup(const std::string& tokenizer_dir, const std::string& chat_format);

}  // namespace hps::text
