// The BPE model of tokenizer.json: vocabulary + ranked merges, applied to one pre-tokenized word.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hps::text {

class Bpe {
 public:
  // `model` is tokenizer.json's "model" object; `where` names the file in errors.
  static Bpe from_json(const nlohmann::json& model, const std::string& where);

  // Appends the ids of one word (byte-level mapped, or SentencePiece text). Merges are applied lowest rank first,
  // ties to the leftmost pair, in O(n log n) (a priority queue over a linked list of symbols, as HF's word.rs),
  // so a 1 MB word finishes. A character missing from the vocabulary becomes its UTF-8 bytes as <0xXX> tokens
  // (byte_fallback), else the unknown token (runs of them fused with fuse_unk), else an InputError.
  void encode_word(std::string_view word, std::vector<int64_t>& out) const;

  const std::unordered_map<std::string, int64_t>& vocab() const { return vocab_; }

 private:
  std::unordered_map<std::string, int64_t> vocab_;
  // (left id, right id) → (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  bool ignore_merges_ = false;
  bool byte_fallback_ = false, fuse_unk_ = false;
  int64_t unk_ = -1;  // the unknown token's id, or -1
  // Word → ids, for short words (natural text repeats words; HF caches the same way). Behind a pointer so
  // that Bpe stays movable.
  struct Cache {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int64_t>> map;
  };
  std::unique_ptr<Cache> cache_ = std::make_unique<Cache>();
};

}  // namespace hps::text
