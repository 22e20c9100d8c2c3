// tokenizer.json loading, then encoding and decoding a fixed text with whatever loaded.
#include "fuzz_common.hpp"
#include "text/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hps::fuzz::run_input([&] {
    const std::string path = hps::fuzz::write_temp("tokenizer.json", hps::fuzz::as_text(data, size));
    const auto tok = hps::text::Tokenizer::from_file(path);
    const auto ids = tok.encode("Hello, world! <|im_start|> naïve 123 \n\n  tabs\there", true);
    (void)tok.decode(ids, false);
    (void)tok.decode(ids, true);
  });
}
