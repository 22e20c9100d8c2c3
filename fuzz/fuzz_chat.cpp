// Chat rendering: the first byte picks the chat format; the rest is messages separated by 0x1E, each
// "role 0x1F content". Also recognizing a tokenizer's chat_template from arbitrary text.
#include <vector>

#include "fuzz_common.hpp"
#include "text/chat.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using hps::text::ChatFormat;
  const ChatFormat formats[] = {ChatFormat::llama3, ChatFormat::chatml, ChatFormat::mistral, ChatFormat::hh};
  const std::string_view text = hps::fuzz::as_text(data + 1, size - 1);
  hps::fuzz::run_input([&] { (void)hps::text::detect_chat_template(std::string(text)); });
  return hps::fuzz::run_input([&] {
    std::vector<hps::text::Message> messages;
    std::string_view rest = text;
    while (!rest.empty()) {
      auto [one, tail] = hps::fuzz::split_once(rest, '\x1e');
      auto [role, content] = hps::fuzz::split_once(one, '\x1f');
      messages.push_back({std::string(role), std::string(content)});
      rest = tail;
    }
    hps::text::ChatTemplate t;
    t.format = formats[data[0] % 4];
    if (data[0] & 4) t.default_system = "You are a helpful assistant.";
    (void)hps::text::render_prompt(t, messages);
    (void)hps::text::response_suffix(t, "</s>");
  });
}
