#include "text/tokenizer.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/json_text.hpp"
#include "text/regex.hpp"
#include "text/token_decoder.hpp"
#include "text/utf8.hpp"

namespace hps::text {

using nlohmann::json;

namespace {

// GPT-2's pre-tokenization regex, used by the ByteLevel pre-tokenizer when use_regex is true.
const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Normalizers: Unicode forms, and SentencePiece's Prepend("▁") / Replace(" ", "▁").
struct Norm {
  enum class Kind { nfc, nfkc, prepend, replace } kind;
  std::string a, b;  // prepend: a; replace: a → b
};

struct PreStep {
  enum class Kind { split, byte_level, metaspace } kind;
  std::shared_ptr<Regex> regex;  // split pattern, or GPT-2's for byte_level with use_regex
  bool removed = false;          // Split behavior "Removed" (matches dropped) vs "Isolated"
  bool add_prefix_space = false;
  std::string replacement;       // metaspace: "▁" for spaces
  std::string prepend = "always";  // metaspace: always | first | never
  bool split = false;            // metaspace: a new piece at each replacement character
};

struct Segment {
  std::string text;
  int64_t token = -1;  // an added token's id, or -1 for text still to tokenize
};

std::string escape_regex(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

struct Tokenizer::Impl {
  Bpe bpe;
  std::vector<Norm> norms;
  std::vector<PreStep> pre;
  bool byte_level = true;                // ByteLevel pre-tokenizer and decoder; else SentencePiece style
  std::vector<DecodeStep> decode_steps;  // the SentencePiece-style decoder chain
  bool has_template = false;
  std::vector<std::pair<bool, std::vector<int64_t>>> single;  // (is the sequence, special ids)
  std::vector<AddedToken> added;
  std::unordered_map<int64_t, size_t> added_by_id;
  // Added-token indices by first byte, longest first: raw (normalized=false) and normalized sets.
  std::array<std::vector<size_t>, 256> raw_index, norm_index;

  std::string normalize(const std::string& s) const;
  void split_added(const std::vector<Segment>& in, bool normalized_set, std::vector<Segment>& out) const;
  void pre_tokenize(const std::string& s, bool at_start, std::vector<std::string>& pieces) const;
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

namespace {

std::vector<Norm> parse_normalizer(const json& n, const std::string& where) {
  if (n.is_null()) return {};
  const std::string type = n.value("type", "");
  if (type == "NFC") return {{Norm::Kind::nfc, "", ""}};
  if (type == "NFKC") return {{Norm::Kind::nfkc, "", ""}};
  if (type == "Prepend") return {{Norm::Kind::prepend, n.at("prepend").get<std::string>(), ""}};
  if (type == "Replace") {
    if (!n.at("pattern").contains("String")) throw InputError(where + ": normalizer Replace supports a String pattern only");
    return {{Norm::Kind::replace, n.at("pattern").at("String").get<std::string>(), n.at("content").get<std::string>()}};
  }
  if (type == "Sequence") {
    std::vector<Norm> out;
    for (const auto& x : n.at("normalizers")) {
      auto v = parse_normalizer(x, where);
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  }
  throw InputError(where + ": normalizer type '" + type + "' is not supported (supported: NFC, NFKC, Prepend, Replace, Sequence)");
}

void parse_pre(const json& p, const std::string& where, std::vector<PreStep>& out) {
  if (p.is_null()) return;
  const std::string type = p.value("type", "");
  if (type == "Sequence") {
    for (const auto& x : p.at("pretokenizers")) parse_pre(x, where, out);
  } else if (type == "ByteLevel") {
    PreStep s{.kind = PreStep::Kind::byte_level, .add_prefix_space = p.value("add_prefix_space", false)};
    if (p.value("use_regex", true)) s.regex = std::make_shared<Regex>(kGpt2Pattern, where);
    out.push_back(std::move(s));
  } else if (type == "Metaspace") {
    PreStep s{.kind = PreStep::Kind::metaspace};
    s.replacement = p.value("replacement", std::string("\u2581"));
    s.prepend = p.value("prepend_scheme", std::string(p.value("add_prefix_space", true) ? "always" : "never"));
    if (s.prepend != "always" && s.prepend != "first" && s.prepend != "never")
      throw InputError(where + ": Metaspace prepend_scheme '" + s.prepend + "' is not always, first or never");
    s.split = p.value("split", true);
    out.push_back(std::move(s));
  } else if (type == "Split") {
    if (p.value("invert", false)) throw InputError(where + ": pre_tokenizer Split with invert=true is not supported");
    const std::string behavior = p.value("behavior", "Isolated");
    if (behavior != "Isolated" && behavior != "Removed")
      throw InputError(where + ": pre_tokenizer Split behavior '" + behavior + "' is not supported (Isolated, Removed)");
    const json& pat = p.at("pattern");
    std::string regex;
    if (pat.contains("Regex")) regex = pat.at("Regex").get<std::string>();
    else if (pat.contains("String")) regex = escape_regex(pat.at("String").get<std::string>());
    else throw InputError(where + ": pre_tokenizer Split needs pattern.Regex or pattern.String");
    out.push_back({.kind = PreStep::Kind::split, .regex = std::make_shared<Regex>(regex, where), .removed = behavior == "Removed"});
  } else {
    throw InputError(where + ": pre_tokenizer type '" + type +
                     "' is not supported (supported: ByteLevel, Metaspace, Split, Sequence)");
  }
}

// TemplateProcessing's "single" template: (true = the sequence, else special ids), or nullopt.
using Template = std::vector<std::pair<bool, std::vector<int64_t>>>;

void parse_post(const json& p, const std::string& where, std::optional<Template>& out) {
  if (p.is_null()) return;
  const std::string type = p.value("type", "");
  if (type == "ByteLevel") return;  // only moves offsets
  if (type == "Sequence") {
    for (const auto& x : p.at("processors")) parse_post(x, where, out);
    return;
  }
  if (type != "TemplateProcessing")
    throw InputError(where + ": post_processor type '" + type +
                     "' is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
  out.emplace();
  for (const auto& item : p.at("single")) {
    if (item.contains("Sequence")) {
      out->push_back({true, {}});
    } else if (item.contains("SpecialToken")) {
      const std::string name = item.at("SpecialToken").at("id").get<std::string>();
      if (!p.contains("special_tokens") || !p["special_tokens"].contains(name))
        throw InputError(where + ": post_processor template names special token '" + name + "' without ids");
      out->push_back({false, p.at("special_tokens").at(name).at("ids").get<std::vector<int64_t>>()});
    } else {
      throw InputError(where + ": post_processor template item " + io::json_excerpt(item) + " is not understood");
    }
  }
}

std::optional<std::string> token_field(const json& cfg, const char* key) {
  if (!cfg.contains(key) || cfg[key].is_null()) return std::nullopt;
  if (cfg[key].is_string()) return cfg[key].get<std::string>();
  if (cfg[key].is_object() && cfg[key].contains("content")) return cfg[key]["content"].get<std::string>();
  return std::nullopt;
}

// SentencePiece's Metaspace: spaces become the replacement character, which is prepended (always, or only at
// the very start of the input with "first", unless already there); with split, each one starts a new piece.
void metaspace(const PreStep& step, std::string piece, bool at_start, std::vector<std::string>& out) {
  for (size_t p = piece.find(' '); p != std::string::npos; p = piece.find(' ', p + step.replacement.size()))
    piece.replace(p, 1, step.replacement);
  const bool prepend = step.prepend == "always" || (step.prepend == "first" && at_start);
  if (prepend && piece.compare(0, step.replacement.size(), step.replacement) != 0) piece.insert(0, step.replacement);
  if (!step.split) {
    out.push_back(std::move(piece));
    return;
  }
  size_t start = 0;
  for (size_t p = piece.find(step.replacement, 1); p != std::string::npos; p = piece.find(step.replacement, p + 1)) {
    out.push_back(piece.substr(start, p - start));
    start = p;
  }
  out.push_back(piece.substr(start));
}

}  // namespace

Tokenizer Tokenizer::from_file(const std::string& path) {
  const json j = io::read_json_file(path);
  try {
    return from_json(j, path);
  } catch (const json::exception& e) {  // a missing key or a wrong type deep in the file
    throw InputError(path + ": malformed tokenizer.json (" + e.what() + ")");
  }
}

Tokenizer Tokenizer::from_json(const nlohmann::json& j, const std::string& path) {
  Tokenizer t;
  t.source_ = path;
  Impl& impl = *t.impl_;
  if (!j.is_object() || !j.contains("model")) throw InputError(path + ": not a tokenizer.json (no 'model')");
  impl.bpe = Bpe::from_json(j["model"], path);
  impl.norms = parse_normalizer(j.value("normalizer", json()), path);
  parse_pre(j.value("pre_tokenizer", json()), path, impl.pre);
  // Two families: byte-level BPE (GPT-2, Llama 3, Qwen2: a ByteLevel pre-tokenizer and decoder) and
  // SentencePiece-style BPE (Llama 2, Mistral, Gemma: ▁ for spaces, <0xXX> byte fallback, a decoder chain).
  impl.byte_level = std::any_of(impl.pre.begin(), impl.pre.end(), [](const PreStep& s) { return s.kind == PreStep::Kind::byte_level; });
  const json dec = j.value("decoder", json());
  if (dec.is_null()) throw InputError(path + ": decoder is null (a tokenizer needs one to turn ids back into text)");
  if (impl.byte_level && dec.value("type", "") != "ByteLevel")
    throw InputError(path + ": decoder must be ByteLevel with a ByteLevel pre_tokenizer, found " + dec.value("type", "?"));
  if (!impl.byte_level && dec.value("type", "") == "ByteLevel")
    throw InputError(path + ": a ByteLevel decoder needs a ByteLevel pre_tokenizer (found none)");
  if (!impl.byte_level) impl.decode_steps = parse_decoder_steps(dec, path);
  std::optional<Template> tmpl;
  parse_post(j.value("post_processor", json()), path, tmpl);
  impl.has_template = tmpl.has_value();
  if (tmpl) impl.single = std::move(*tmpl);
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const auto& a : j["added_tokens"]) {
      AddedToken tok{a.at("id").get<int64_t>(), a.at("content").get<std::string>(), a.value("single_word", false),
                     a.value("lstrip", false), a.value("rstrip", false), a.value("normalized", false),
                     a.value("special", false)};
      if (tok.content.empty()) throw InputError(path + ": added token " + std::to_string(tok.id) + " is empty");
      if (tok.id < 0 || tok.id > (int64_t{1} << 31))
        throw InputError(path + ": added token '" + tok.content + "' has id " + std::to_string(tok.id) +
                         " (must be in [0, 2^31])");
      impl.added_by_id[tok.id] = impl.added.size();
      impl.added.push_back(std::move(tok));
    }
  for (size_t i = 0; i < impl.added.size(); ++i) {
    auto& idx = impl.added[i].normalized ? impl.norm_index : impl.raw_index;
    idx[static_cast<unsigned char>(impl.added[i].content[0])].push_back(i);
  }
  for (auto* index : {&impl.raw_index, &impl.norm_index})
    for (auto& v : *index)
      std::stable_sort(v.begin(), v.end(),
                       [&](size_t a, size_t b) { return impl.added[a].content.size() > impl.added[b].content.size(); });
  int64_t max_id = -1;
  for (const auto& [tok, id] : impl.bpe.vocab()) max_id = std::max(max_id, id);
  for (const auto& a : impl.added) max_id = std::max(max_id, a.id);
  // id → token is a dense array: a stray huge id would allocate gigabytes for nothing (2^26: 2.4 GB).
  // Real vocabularies are dense, with at most a few holes; allow holes up to the count itself.
  const int64_t count = static_cast<int64_t>(impl.bpe.vocab().size() + impl.added.size());
  if (max_id >= 2 * count + 1024)
    throw InputError(path + ": token id " + std::to_string(max_id) + " is far beyond the " + std::to_string(count) +
                     " tokens the file defines (ids must be below 2 × tokens + 1024 = " +
                     std::to_string(2 * count + 1024) + ")");
  t.id_to_token_.assign(static_cast<size_t>(max_id + 1), "");
  for (const auto& [tok, id] : impl.bpe.vocab()) t.id_to_token_[static_cast<size_t>(id)] = tok;
  for (const auto& a : impl.added) t.id_to_token_[static_cast<size_t>(a.id)] = a.content;
  for (const auto& [is_sequence, ids] : impl.single)  // the template's ids: tokens this file defines
    for (const int64_t id : ids)
      if (!is_sequence && (id < 0 || id > max_id || t.id_to_token_[static_cast<size_t>(id)].empty()))
        throw InputError(path + ": post_processor template adds token id " + std::to_string(id) +
                         ", which is not in the vocabulary");
  return t;
}

Tokenizer Tokenizer::from_dir(const std::string& dir) {
  if (!io::file_exists(dir + "/tokenizer.json"))
    throw InputError(dir + ": no tokenizer.json (only HF fast-tokenizer files are supported)");
  Tokenizer t = from_file(dir + "/tokenizer.json");
  const std::string cfg_path = dir + "/tokenizer_config.json";
  if (io::file_exists(cfg_path)) {
    const json c = io::read_json_file(cfg_path);
    t.config_.bos_token = token_field(c, "bos_token");
    t.config_.eos_token = token_field(c, "eos_token");
    t.config_.pad_token = token_field(c, "pad_token");
    // A string, or (tokenizers with tool templates) a list of {"name", "template"}: the one named "default".
    if (c.contains("chat_template") && c["chat_template"].is_string()) t.config_.chat_template = c["chat_template"];
    if (c.contains("chat_template") && c["chat_template"].is_array())
      for (const auto& named : c["chat_template"])
        if (named.is_object() && named.value("name", json()) == "default" && named.contains("template") &&
            named["template"].is_string())
          t.config_.chat_template = named["template"].get<std::string>();
    for (const auto& name : {t.config_.bos_token, t.config_.eos_token, t.config_.pad_token})
      if (name && !t.token_to_id(*name))
        throw InputError(cfg_path + ": special token '" + *name + "' is not in the vocabulary of tokenizer.json");
  }
  // transformers 5 saves the template in its own file (and no longer in tokenizer_config.json); it wins.
  if (io::file_exists(dir + "/chat_template.jinja")) t.config_.chat_template = io::read_file(dir + "/chat_template.jinja");
  return t;
}

std::string Tokenizer::Impl::normalize(const std::string& s) const {
  std::string cur = s;
  for (const Norm& n : norms) {
    switch (n.kind) {
      case Norm::Kind::nfc:
      case Norm::Kind::nfkc: cur = unicode_normalize(cur, n.kind == Norm::Kind::nfkc); break;
      case Norm::Kind::prepend:
        if (!cur.empty()) cur.insert(0, n.a);  // HF prepends to a non-empty string only
        break;
      case Norm::Kind::replace:
        if (n.a.empty()) break;
        for (size_t p = cur.find(n.a); p != std::string::npos; p = cur.find(n.a, p + n.b.size())) cur.replace(p, n.a.size(), n.b);
        break;
    }
  }
  return cur;
}

void Tokenizer::Impl::split_added(const std::vector<Segment>& in, bool normalized_set, std::vector<Segment>& out) const {
  const auto& index = normalized_set ? norm_index : raw_index;
  for (const auto& seg : in) {
    if (seg.token >= 0) {
      out.push_back(seg);
      continue;
    }
    const std::string& s = seg.text;
    size_t last = 0, i = 0;
    while (i < s.size()) {
      bool matched = false;
      for (size_t k : index[static_cast<unsigned char>(s[i])]) {
        const AddedToken& a = added[k];
        if (s.compare(i, a.content.size(), a.content) != 0) continue;
        size_t start = i, stop = i + a.content.size();
        if (a.single_word) {
          // Only whole words: no regex \\w character (letter, mark, digit, connector such as '_') right
          // before or after the match.
          size_t q = start;
          if (q > 0) do --q; while (q > 0 && (static_cast<unsigned char>(s[q]) & 0xC0) == 0x80);
          const bool before = start > 0 && is_word_char(decode_at(s, q));
          const bool after = stop < s.size() && is_word_char(decode_at(s, stop));
          if (before || after) continue;
        }
        if (a.lstrip)
          while (start > last) {
            size_t q = start - 1;
            while (q > last && (static_cast<unsigned char>(s[q]) & 0xC0) == 0x80) --q;
            if (!is_unicode_whitespace(decode_at(s, q))) break;
            start = q;
          }
        if (a.rstrip)
          while (stop < s.size() && is_unicode_whitespace(decode_at(s, stop)))
            stop += utf8_len(static_cast<unsigned char>(s[stop]));
        if (start > last) out.push_back({s.substr(last, start - last), -1});
        out.push_back({"", a.id});
        last = i = stop;
        matched = true;
        break;
      }
      if (!matched) ++i;
    }
    if (last < s.size()) out.push_back({s.substr(last), -1});
  }
}

void Tokenizer::Impl::pre_tokenize(const std::string& s, bool at_start, std::vector<std::string>& pieces) const {
  std::vector<std::string> cur{s}, next;
  for (const auto& step : pre) {
    next.clear();
    if (step.kind == PreStep::Kind::metaspace) {
      for (auto& piece : cur) metaspace(step, piece, at_start, next);
      std::swap(cur, next);
      continue;
    }
    for (auto& piece : cur) {
      if (step.kind == PreStep::Kind::byte_level && step.add_prefix_space && !piece.empty() && piece[0] != ' ')
        piece.insert(piece.begin(), ' ');
      if (step.regex) {
        size_t last = 0;
        for (auto [b, e] : step.regex->find_all(piece)) {
          if (b > last) next.push_back(piece.substr(last, b - last));
          if (!step.removed) next.push_back(piece.substr(b, e - b));
          last = e;
        }
        if (last < piece.size()) next.push_back(piece.substr(last));
      } else {
        next.push_back(piece);
      }
    }
    if (step.kind == PreStep::Kind::byte_level) {
      const auto& table = byte_to_unicode();
      for (auto& piece : next) {
        std::string mapped;
        mapped.reserve(piece.size() * 2);
        for (unsigned char c : piece) mapped += table[c];
        piece = std::move(mapped);
      }
    }
    std::swap(cur, next);
  }
  for (auto& p : cur)
    if (!p.empty()) pieces.push_back(std::move(p));
}

std::vector<int64_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  if (auto bad = find_invalid_utf8(text))
    throw InputError("tokenizer: input is not valid UTF-8 at byte offset " + std::to_string(*bad) + " (byte 0x" +
                     [&] {
                       const char* hex = "0123456789abcdef";
                       const auto c = static_cast<unsigned char>(text[*bad]);
                       return std::string{hex[c >> 4], hex[c & 15]};
                     }() + ")");
  std::vector<Segment> raw, norm, segs;
  impl_->split_added({{std::string(text), -1}}, false, raw);
  for (auto& s : raw)
    if (s.token < 0 && !impl_->norms.empty()) s.text = impl_->normalize(s.text);
  impl_->split_added(raw, true, segs);
  std::vector<int64_t> ids;
  std::vector<std::string> pieces;
  for (const auto& seg : segs) {
    if (seg.token >= 0) {
      ids.push_back(seg.token);
      continue;
    }
    pieces.clear();
    impl_->pre_tokenize(seg.text, &seg == &segs.front(), pieces);
    for (const auto& p : pieces) impl_->bpe.encode_word(p, ids);
  }
  if (!add_special_tokens || !impl_->has_template) return ids;
  std::vector<int64_t> out;
  out.reserve(ids.size() + 4);
  for (const auto& [is_seq, special] : impl_->single) {
    if (is_seq) out.insert(out.end(), ids.begin(), ids.end());
    else out.insert(out.end(), special.begin(), special.end());
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  if (!impl_->byte_level) {
    std::vector<std::string> tokens;
    for (int64_t id : ids)
      if (!(skip_special_tokens && is_special(id))) tokens.push_back(id_to_token(id));
    return apply_decoder(impl_->decode_steps, std::move(tokens));
  }
  std::string bytes;
  for (int64_t id : ids) {
    if (skip_special_tokens && is_special(id)) continue;
    const std::string& tok = id_to_token(id);
    // ByteLevel decoder: a token whose every character is in the byte map becomes those bytes; any other
    // token (an added token with a space or CJK, say) is kept as its own UTF-8.
    std::string b;
    bool all = true;
    for (size_t i = 0; i < tok.size(); i += utf8_len(static_cast<unsigned char>(tok[i]))) {
      const int v = unicode_to_byte(decode_at(tok, i));
      if (v < 0) {
        all = false;
        break;
      }
      b += static_cast<char>(v);
    }
    bytes += all ? b : tok;
  }
  return utf8_lossy(bytes);
}

std::optional<int64_t> Tokenizer::token_to_id(const std::string& token) const {
  for (const auto& a : impl_->added)
    if (a.content == token) return a.id;
  auto it = impl_->bpe.vocab().find(token);
  if (it == impl_->bpe.vocab().end()) return std::nullopt;
  return it->second;
}

const std::string& Tokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size() || (id_to_token_[static_cast<size_t>(id)].empty()))
    throw InputError("tokenizer " + source_ + ": no token with id " + std::to_string(id) + " (vocabulary size " +
                     std::to_string(vocab_size()) + ")");
  return id_to_token_[static_cast<size_t>(id)];
}

bool Tokenizer::is_special(int64_t id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

std::optional<int64_t> Tokenizer::bos_id() const { return config_.bos_token ? token_to_id(*config_.bos_token) : std::nullopt; }
std::optional<int64_t> Tokenizer::eos_id() const { return config_.eos_token ? token_to_id(*config_.eos_token) : std::nullopt; }
std::optional<int64_t> Tokenizer::pad_id() const { return config_.pad_token ? token_to_id(*config_.pad_token) : std::nullopt; }

}  // namespace hps::text
