#include "text/text_setup.hpp"

#include <utility>

namespace hps::text {

TextSetup load_text_setup(const std::string& tokenizer_dir, const std::string& chat_format) {
  Tokenizer tok = Tokenizer::from_dir(tokenizer_dir);
  const ChatTemplate chat = choose_chat_template(tok.config().chat_template, chat_format);
  return {std::move(tok), chat};
}

}  // namespace hps::text
