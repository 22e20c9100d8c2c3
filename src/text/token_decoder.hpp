// tokenizer.json "decoder" for SentencePiece-style BPE (Llama-2, Mistral, Gemma): a chain of steps over the list
// of token strings, as HF tokenizers' decoders/*.rs apply them (the ByteLevel decoder stays in tokenizer.cpp).
//   Replace    every occurrence of `from` in each token by `to` ("▁" → " ")
//   ByteFallback  runs of <0xXX> tokens become their bytes: valid UTF-8 as is, else one U+FFFD per byte
//   Fuse       all tokens into one
//   Strip      up to `start` leading and `stop` trailing `content` characters off each token
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace hps::text {

struct DecodeStep {
  enum class Kind { replace, byte_fallback, fuse, strip } kind;
  std::string from, to;         // replace; strip: `from` is the content character
  int64_t start = 0, stop = 0;  // strip
};

// The steps of a decoder object ("Sequence" or one step); InputError naming `where` for anything else.
std::vector<DecodeStep> parse_decoder_steps(const nlohmann::json& decoder, const std::string& where);

std::string apply_decoder(const std::vector<DecodeStep>& steps, std::vector<std::string> tokens);

}  // namespace hps::text
