#include "text/text_setup.hpp"

#include <utility>

namespace hps::text {

TextSetup load_text_setup(const std::string& tokenizer_dir, const std::string& chat_format) {
  Tokenizer tok = Tokenizer::from_dir(tokenizer_dir);
  const ChatTemplate chat = choose_chat_template(tok.config(), chat_format, tokenizer_dir);
  std::string warning;
  if (chat_format.empty() && tok.config().chat_template.empty())
    warning = "warning: " + tokenizer_dir + " has no chat template (no chat_template.jinja, none in "
              "tokenizer_config.json): prompts render as HH transcripts (\\n\\nHuman: …\\n\\nAssistant:); set "
              "data.chat_format / --chat-format to choose another";
  return {std::move(tok), chat, std::move(warning)};
}

}  // namespace hps::text
