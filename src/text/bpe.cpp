#include "text/bpe.hpp"

#include <nlohmann/json.hpp>
#include <cstdio>
#include <queue>

#include "core/error.hpp"
#include "io/json_text.hpp"
#include "text/utf8.hpp"

namespace hps::text {

namespace {

constexpr size_t kCacheWordBytes = 64;
constexpr size_t kCacheEntries = 200'000;

uint64_t pair_key(int64_t a, int64_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

}  // namespace

Bpe Bpe::from_json(const nlohmann::json& m, const std::string& where) {
  if (!m.is_object() || m.value("type", "") != "BPE")
    throw InputError(where + ": model.type must be \"BPE\" (WordPiece, Unigram and WordLevel tokenizers are not "
                             "supported)");
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0)
    throw InputError(where + ": model.dropout must be null (BPE dropout is a training-time augmentation)");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(k) && !m[k].is_null() && !m[k].get<std::string>().empty())
      throw InputError(where + std::string(": model.") + k + " is not supported");
  Bpe b;
  b.ignore_merges_ = m.value("ignore_merges", false);
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw InputError(where + ": model.vocab must be an object");
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0)
      throw InputError(where + ": model.vocab['" + it.key() + "'] must be a non-negative integer id");
    b.vocab_[it.key()] = it.value().get<int64_t>();
  }
  b.byte_fallback_ = m.value("byte_fallback", false);
  b.fuse_unk_ = m.value("fuse_unk", false);
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    auto u = b.vocab_.find(m["unk_token"].get<std::string>());
    if (u == b.vocab_.end()) throw InputError(where + ": model.unk_token is not in the vocabulary");
    b.unk_ = u->second;
  }
  if (!m.contains("merges") || !m["merges"].is_array()) throw InputError(where + ": model.merges must be a list");
  int32_t rank = 0;
  for (const auto& mg : m["merges"]) {
    std::string left, right;
    if (mg.is_string()) {  // older files: "a b"
      const std::string s = mg.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) throw InputError(where + ": merge " + io::json_excerpt(mg) + " is not \"left right\"");
      left = s.substr(0, sp), right = s.substr(sp + 1);
    } else if (mg.is_array() && mg.size() == 2) {  // newer files: ["a", "b"]
      left = mg[0].get<std::string>(), right = mg[1].get<std::string>();
    } else {
      throw InputError(where + ": merge " + io::json_excerpt(mg) + " must be \"left right\" or [left, right]");
    }
    auto l = b.vocab_.find(left), r = b.vocab_.find(right), lr = b.vocab_.find(left + right);
    if (l == b.vocab_.end() || r == b.vocab_.end() || lr == b.vocab_.end())
      throw InputError(where + ": merge " + io::json_excerpt(mg) + " uses a token missing from the vocabulary");
    // A pair listed twice keeps its last rank, as HF's merge map (built by collecting into a map) does.
    b.merges_.insert_or_assign(pair_key(l->second, r->second), std::make_pair(rank++, static_cast<int32_t>(lr->second)));
  }
  return b;
}

void Bpe::encode_word(std::string_view word, std::vector<int64_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(std::string(word));
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kCacheWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    auto it = cache_->map.find(std::string(word));
    if (it != cache_->map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  // Symbols: one per character, in a doubly linked list.
  struct Sym {
    int64_t id;
    int64_t prev, next;
    bool alive;
  };
  std::vector<Sym> syms;
  syms.reserve(word.size());
  bool last_unk = false;
  auto add = [&](int64_t id) {
    const auto k = static_cast<int64_t>(syms.size());
    syms.push_back({id, k - 1, k + 1, true});
  };
  for (size_t i = 0; i < word.size();) {
    const size_t n = utf8_len(static_cast<unsigned char>(word[i]));
    const std::string ch(word.substr(i, n));
    i += n;
    if (auto it = vocab_.find(ch); it != vocab_.end()) {
      add(it->second), last_unk = false;
      continue;
    }
    if (byte_fallback_) {  // the character's bytes, when the vocabulary has every one of them
      std::vector<int64_t> bytes;
      for (const unsigned char c : ch) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", c);
        if (auto b = vocab_.find(name); b != vocab_.end()) bytes.push_back(b->second);
      }
      if (bytes.size() == ch.size()) {
        for (int64_t b : bytes) add(b);
        last_unk = false;
        continue;
      }
    }
    if (unk_ < 0) throw InputError("tokenizer: character '" + ch + "' is not in the BPE vocabulary");
    if (!(fuse_unk_ && last_unk)) add(unk_);
    last_unk = true;
  }
  syms.back().next = -1;
  struct Cand {
    int32_t rank;
    int64_t pos;
    int32_t new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> queue;
  auto push = [&](int64_t pos) {
    const int64_t nx = syms[static_cast<size_t>(pos)].next;
    if (nx < 0) return;
    auto it = merges_.find(pair_key(syms[static_cast<size_t>(pos)].id, syms[static_cast<size_t>(nx)].id));
    if (it != merges_.end()) queue.push({it->second.first, pos, it->second.second});
  };
  for (int64_t i = 0; i + 1 < static_cast<int64_t>(syms.size()); ++i) push(i);
  while (!queue.empty()) {
    const Cand c = queue.top();
    queue.pop();
    Sym& s = syms[static_cast<size_t>(c.pos)];
    if (!s.alive || s.next < 0) continue;
    Sym& r = syms[static_cast<size_t>(s.next)];
    auto it = merges_.find(pair_key(s.id, r.id));
    if (it == merges_.end() || it->second.second != c.new_id) continue;  // stale entry
    s.id = c.new_id;
    r.alive = false;
    s.next = r.next;
    if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = c.pos;
    if (s.prev >= 0) push(s.prev);
    push(c.pos);
  }
  std::vector<int64_t> ids;
  for (int64_t i = 0; i >= 0; i = syms[static_cast<size_t>(i)].next) ids.push_back(syms[static_cast<size_t>(i)].id);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    if (cache_->map.size() < kCacheEntries) cache_->map.emplace(std::string(word), std::move(ids));
  }
}

}  // namespace hps::text
