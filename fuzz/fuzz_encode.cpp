// Encoding hostile text with each tokenizer of the fixtures (GPT-2, Llama 3, Qwen2: byte-level BPE, Oniguruma
// split patterns, NFC; two SentencePiece-style ones: byte fallback, Metaspace, the decoder chain), then decoding. Also differential: hps's NFC / NFKC against
// utf8proc's own (which is exact but quadratic in a run of marks, so only on short valid inputs).
#include <utf8proc.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <vector>

#include "fuzz_common.hpp"
#include "io/atomic_file.hpp"
#include "text/tokenizer.hpp"
#include "text/utf8.hpp"

namespace {

const std::vector<hps::text::Tokenizer>& tokenizers() {
  static const std::vector<hps::text::Tokenizer> all = [] {
    const char* dir = std::getenv("HPS_FIXTURES_DIR");
    if (!dir) {
      std::fprintf(stderr, "fuzz_encode: set HPS_FIXTURES_DIR to tests/fixtures\n");
      std::abort();
    }
    std::vector<hps::text::Tokenizer> v;
    for (const char* name : {"gpt2", "llama3", "qwen2"})
      v.push_back(hps::text::Tokenizer::from_dir(std::string(dir) + "/tokenizers/" + name));
    // The SentencePiece-style ones (byte fallback, Metaspace): their tokenizer.json lives inside the fixture.
    const auto spm = hps::io::read_json_file(std::string(dir) + "/tokenizers/spm_cases.json");
    for (const auto& [style, value] : spm.items()) {
      const std::string path = hps::fuzz::write_temp("spm_" + style + ".json", value["tokenizer"].dump());
      v.push_back(hps::text::Tokenizer::from_file(path));
    }
    return v;
  }();
  return all;
}

void check_normalization(std::string_view text) {
  if (text.size() > 4096 || hps::text::find_invalid_utf8(text)) return;
  for (const bool compat : {false, true}) {
    utf8proc_uint8_t* ref = nullptr;
    const auto opts = static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | (compat ? UTF8PROC_COMPAT : 0));
    const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                static_cast<utf8proc_ssize_t>(text.size()), &ref, opts);
    if (n < 0) continue;  // utf8proc refuses it (e.g. unassigned code points under STABLE): an error either way
    const std::string want(reinterpret_cast<char*>(ref), static_cast<size_t>(n));
    std::free(ref);
    if (hps::text::unicode_normalize(text, compat) != want) {
      std::fprintf(stderr, "fuzz_encode: NF%sC differs from utf8proc\n", compat ? "K" : "");
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& all = tokenizers();
  hps::fuzz::run_input([&] { check_normalization(hps::fuzz::as_text(data, size)); });
  return hps::fuzz::run_input([&] {
    for (const auto& tok : all) {
      const auto ids = tok.encode(hps::fuzz::as_text(data, size), true);
      for (const int64_t id : ids)
        if (id < 0 || id >= tok.vocab_size()) std::abort();  // every id names a token
      (void)tok.decode(ids, true);
    }
  });
}
