// Splitting Jinja source into text, {{ output }} and {% block %} pieces, with whitespace control applied
// (`-` / `+` markers, trim_blocks, lstrip_blocks) and each tag's contents split into expression tokens.
// Internal to text/jinja_*.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hps::text::jinja {

struct Token {
  enum class Kind { name, string, integer, floating, op };
  Kind kind = Kind::op;
  std::string text;  // a name, an operator, or a string literal's decoded value
  int64_t i = 0;
  double f = 0;
  int line = 0;
};

struct Piece {
  enum class Kind { text, output, block };
  Kind kind = Kind::text;
  int line = 0;
  std::string text;           // text pieces
  std::vector<Token> tokens;  // output and block pieces
};

// ConfigError naming `name` and the line for an unclosed tag or string, or a character Jinja rejects.
std::vector<Piece> lex_template(std::string_view source, const std::string& name);

}  // namespace hps::text::jinja
