// Chat templates: any bytes as a Jinja template, parsed and rendered with a small conversation (as
// apply_chat_template would: messages, tools, add_generation_prompt, bos/eos). Hostile templates must end in
// a named error: no crash, no stack overflow from nesting, no hang (range and output are bounded).
#include "fuzz_common.hpp"
#include "text/jinja.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using hps::text::jinja::Dict;
  using hps::text::jinja::Value;
  return hps::fuzz::run_input([&] {
    const hps::text::jinja::Template t(hps::fuzz::as_text(data, size), "fuzz");
    auto message = [](const char* role, const char* content) {
      Dict m;
      m.items = {{"role", Value::string(role)}, {"content", Value::string(content)}};
      return Value::make_dict(std::move(m));
    };
    Dict ctx;
    ctx.items = {{"messages", Value::make_list({message("system", "Be brief."), message("user", "Hi \xc3\xa9"),
                                                message("assistant", "Hello."), message("user", "2+2?")})},
                 {"tools", Value::none()},
                 {"add_generation_prompt", Value::boolean(true)},
                 {"bos_token", Value::string("<s>")},
                 {"eos_token", Value::string("</s>")}};
    hps::text::jinja::RenderOptions o;
    o.now = std::tm{};
    o.max_output = size_t{1} << 20;
    (void)t.render(ctx, o);
  });
}
