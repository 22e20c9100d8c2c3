// HF tokenizer.json for byte-level BPE tokenizers (GPT-2, Llama-3, Qwen2 families), with ids identical to
// HF `tokenizers` (tests/fixtures/tokenizers, tools/fixtures/make_tokenizer_fixtures.py).
//
// encode: added tokens are matched first (leftmost-longest; lstrip / rstrip / single_word honoured; tokens
// with normalized=false on the raw text, the others after normalization) → normalizer (NFC / NFKC) →
// pre-tokenizer (Split with the model's regex through Oniguruma, ByteLevel) → BPE → post-processor
// (TemplateProcessing: BOS/EOS). decode: ByteLevel decoder, invalid UTF-8 → U+FFFD as HF does.
// Anything else in the file (WordPiece, Metaspace / byte_fallback SentencePiece BPE, other normalizers or
// pre-tokenizers) is rejected with the JSON path named.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/bpe.hpp"

namespace hps::text {

struct AddedToken {
  int64_t id = 0;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// What tokenizer_config.json adds: the special tokens a model uses and its chat template.
struct TokenizerConfig {
  std::optional<std::string> bos_token, eos_token, pad_token;
  std::string chat_template;  // empty when the file has none
};

class Tokenizer {
 public:
  // tokenizer.json alone; from_dir also reads tokenizer_config.json when present.
  static Tokenizer from_file(const std::string& tokenizer_json);
  static Tokenizer from_dir(const std::string& dir);

  // Throws InputError (with the byte offset) on invalid UTF-8.
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = true) const;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }
  std::optional<int64_t> token_to_id(const std::string& token) const;
  const std::string& id_to_token(int64_t id) const;  // throws InputError for an unknown id
  bool is_special(int64_t id) const;
  const TokenizerConfig& config() const { return config_; }
  std::optional<int64_t> bos_id() const;
  std::optional<int64_t> eos_id() const;
  std::optional<int64_t> pad_id() const;
  const std::string& source() const { return source_; }

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  Tokenizer();
  static Tokenizer from_json(const nlohmann::json& j, const std::string& path);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string source_;
  TokenizerConfig config_;
  std::vector<std::string> id_to_token_;
};

}  // namespace hps::text
