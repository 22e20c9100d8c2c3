#include "text/jinja_lex.hpp"

#include <cctype>
#include <charconv>

#include "core/error.hpp"
#include "text/utf8.hpp"

namespace hps::text::jinja {

namespace {

constexpr size_t kMaxTokens = 4096;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Python's str.rstrip() on the ASCII whitespace a template's text can end with before a `{%-` tag.
void rstrip(std::string& s) {
  while (!s.empty() && is_space(s.back())) s.pop_back();
}

class Lexer {
 public:
  Lexer(std::string src, const std::string& name) : src_(std::move(src)), name_(name) {}

  std::vector<Piece> run() {
    while (pos_ < src_.size()) {
      const size_t p = next_tag(pos_);
      std::string text = src_.substr(pos_, p - pos_);
      const int text_line = line_;
      const size_t text_start = pos_;
      count_lines(pos_, p);
      pos_ = p;
      if (p == src_.size()) {
        emit_text(std::move(text), text_line);
        break;
      }
      const char type = src_[p + 1];
      size_t q = p + 2;
      char sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
      if (sign == '-') {
        rstrip(text);
      } else if (sign != '+' && type != '{') {  // lstrip_blocks: a block or comment tag alone on its line
        const size_t l_pos = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        const bool line_starting = text_start == 0 || src_[text_start - 1] == '\n';
        bool blank = l_pos < text.size();
        for (size_t k = l_pos; k < text.size() && blank; ++k) blank = is_space(text[k]);
        if ((l_pos > 0 || line_starting) && blank) text.resize(l_pos);
      }
      emit_text(std::move(text), text_line);
      if (type == '#') comment(q);
      else tag(type == '{' ? Piece::Kind::output : Piece::Kind::block, q);
    }
    return std::move(pieces_);
  }

 private:
  [[noreturn]] void fail(const std::string& what, int line) const {
    throw ConfigError(name_ + " line " + std::to_string(line) + ": " + what);
  }

  size_t next_tag(size_t from) const {
    for (size_t k = src_.find('{', from); k != std::string::npos; k = src_.find('{', k + 1))
      if (k + 1 < src_.size() && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    return src_.size();
  }

  void count_lines(size_t from, size_t to) {
    for (size_t k = from; k < to; ++k) line_ += src_[k] == '\n';
  }

  void emit_text(std::string text, int line) {
    if (!text.empty()) pieces_.push_back({Piece::Kind::text, line, std::move(text), {}});
  }

  // After a tag's close at `after` (its marker `sign`): `-` eats all whitespace, trim_blocks one newline.
  void close(size_t after, char sign, bool block) {
    if (sign == '-') {
      while (after < src_.size() && is_space(src_[after])) ++after;
    } else if (sign != '+' && block && after < src_.size() && src_[after] == '\n') {
      ++after;
    }
    count_lines(pos_, after);
    pos_ = after;
  }

  void comment(size_t q) {
    const size_t e = src_.find("#}", q);
    if (e == std::string::npos) fail("unclosed comment {# … #}", line_);
    const char sign = e > q && (src_[e - 1] == '-' || src_[e - 1] == '+') ? src_[e - 1] : 0;
    close(e + 2, sign, true);
  }

  void tag(Piece::Kind kind, size_t q) {
    const std::string end = kind == Piece::Kind::output ? "}}" : "%}";
    Piece piece{kind, line_, "", {}};
    int line = line_;
    int open = 0;  // brackets open in the tag: `}}` inside `{'a': {'b': 1}}` does not end it
    for (size_t k = q;;) {
      while (k < src_.size() && is_space(src_[k])) line += src_[k++] == '\n';
      if (k >= src_.size()) fail("unclosed tag (no " + end + ")", piece.line);
      char sign = 0;
      if (open == 0 && (src_[k] == '-' || src_[k] == '+') && src_.compare(k + 1, 2, end) == 0) sign = src_[k++];
      if (open == 0 && src_.compare(k, 2, end) == 0) {
        pos_ = q;
        close(k + 2, sign, kind == Piece::Kind::block);
        break;
      }
      k = token(k, line, piece.tokens);
      if (const Token& t = piece.tokens.back(); t.kind == Token::Kind::op && t.text.size() == 1) {
        if (t.text[0] == '(' || t.text[0] == '[' || t.text[0] == '{') ++open;
        if ((t.text[0] == ')' || t.text[0] == ']' || t.text[0] == '}') && open > 0) --open;
      }
      if (piece.tokens.size() > kMaxTokens)  // bounds the depth of the tree a tag parses into
        fail("a tag of more than " + std::to_string(kMaxTokens) + " tokens", piece.line);
    }
    if (kind == Piece::Kind::block && !piece.tokens.empty() && piece.tokens[0].text == "raw" &&
        piece.tokens[0].kind == Token::Kind::name)
      return raw(piece.line);
    pieces_.push_back(std::move(piece));
  }

  // {% raw %} … {% endraw %}: the text between, verbatim.
  void raw(int line) {
    for (size_t k = src_.find("{%", pos_); k != std::string::npos; k = src_.find("{%", k + 1)) {
      size_t j = k + 2;
      const bool strip_before = j < src_.size() && src_[j] == '-';
      if (strip_before || (j < src_.size() && src_[j] == '+')) ++j;
      while (j < src_.size() && is_space(src_[j])) ++j;
      if (src_.compare(j, 6, "endraw") != 0) continue;
      j += 6;
      while (j < src_.size() && is_space(src_[j])) ++j;
      char sign = 0;
      if (j < src_.size() && (src_[j] == '-' || src_[j] == '+')) sign = src_[j++];
      if (src_.compare(j, 2, "%}") != 0) continue;
      std::string text = src_.substr(pos_, k - pos_);
      if (strip_before) rstrip(text);
      emit_text(std::move(text), line);
      count_lines(pos_, k);
      pos_ = k;
      close(j + 2, sign, true);
      return;
    }
    fail("{% raw %} without {% endraw %}", line);
  }

  size_t token(size_t k, int line, std::vector<Token>& out) {
    const char c = src_[k];
    Token t;
    t.line = line;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t e = k;
      while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
      t.kind = Token::Kind::name, t.text = src_.substr(k, e - k);
      out.push_back(std::move(t));
      return e;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return number(k, t, out);
    if (c == '\'' || c == '"') return string(k, t, out);
    static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                       "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="};
    for (const char* op : kOps)
      if (src_.compare(k, std::char_traits<char>::length(op), op) == 0) {
        t.text = op;
        out.push_back(std::move(t));
        return k + std::char_traits<char>::length(op);
      }
    fail(std::string("unexpected character '") + c + "' in a tag", line);
  }

  size_t number(size_t k, Token& t, std::vector<Token>& out) {
    size_t e = k;
    auto digits = [&] {
      while (e < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
    };
    digits();
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) is_float = true, ++e, digits();
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t x = e + 1;
      if (x < src_.size() && (src_[x] == '+' || src_[x] == '-')) ++x;
      if (x < src_.size() && std::isdigit(static_cast<unsigned char>(src_[x]))) is_float = true, e = x, digits();
    }
    std::string text;
    for (size_t j = k; j < e; ++j)
      if (src_[j] != '_') text += src_[j];
    t.text = text;
    if (is_float) {
      t.kind = Token::Kind::floating;
      std::from_chars(text.data(), text.data() + text.size(), t.f);
    } else {
      t.kind = Token::Kind::integer;
      if (std::from_chars(text.data(), text.data() + text.size(), t.i).ec != std::errc())
        fail("integer literal " + text + " out of range", t.line);
    }
    out.push_back(std::move(t));
    return e;
  }

  // A quoted literal with Python's escapes (Jinja decodes them as unicode-escape).
  size_t string(size_t k, Token& t, std::vector<Token>& out) {
    const char q = src_[k];
    std::string v;
    size_t e = k + 1;
    for (;; ++e) {
      if (e >= src_.size()) fail("unclosed string literal", t.line);
      const char c = src_[e];
      if (c == q) break;
      if (c != '\\' || e + 1 >= src_.size()) {
        v += c;
        continue;
      }
      const char x = src_[++e];
      switch (x) {
        case 'n': v += '\n'; break;
        case 't': v += '\t'; break;
        case 'r': v += '\r'; break;
        case '0': v += '\0'; break;
        case 'a': v += '\a'; break;
        case 'b': v += '\b'; break;
        case 'f': v += '\f'; break;
        case 'v': v += '\v'; break;
        case '\\': case '\'': case '"': v += x; break;
        case '\n': break;  // a line continuation
        case 'x': case 'u': case 'U': {
          const size_t n = x == 'x' ? 2 : x == 'u' ? 4 : 8;
          uint32_t cp = 0;
          if (e + n >= src_.size() || std::from_chars(src_.data() + e + 1, src_.data() + e + 1 + n, cp, 16).ptr != src_.data() + e + 1 + n)
            fail(std::string("bad \\") + x + " escape in a string literal", t.line);
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail("escape names no Unicode scalar value", t.line);
          append_utf8(v, static_cast<char32_t>(cp));
          e += n;
          break;
        }
        default: v += '\\', v += x;  // Python keeps unknown escapes
      }
    }
    t.kind = Token::Kind::string, t.text = std::move(v);
    out.push_back(std::move(t));
    return e + 1;
  }

  std::string src_;
  const std::string& name_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Piece> pieces_;
};

// Jinja's newline handling: \r\n and \r become \n, and one trailing newline is dropped.
std::string normalize_newlines(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] == '\r') {
      out += '\n';
      if (k + 1 < s.size() && s[k + 1] == '\n') ++k;
    } else {
      out += s[k];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::vector<Piece> lex_template(std::string_view source, const std::string& name) {
  if (const auto bad = find_invalid_utf8(source))
    throw ConfigError(name + ": invalid UTF-8 at byte offset " + std::to_string(*bad));
  return Lexer(normalize_newlines(source), name).run();
}

}  // namespace hps::text::jinja
