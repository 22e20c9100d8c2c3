// Oniguruma, the regex engine HF tokenizers uses (Ruby syntax, UTF-8), so \p{L}, \p{N}, (?i:…) and
// lookaheads in tokenizer.json patterns behave exactly as in Python.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hps::text {

class Regex {
 public:
  // Throws InputError naming `where` when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  // Every non-overlapping match, left to right, as [begin, end) byte ranges (an empty match advances one
  // character, as Rust's onig find_iter does).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view s) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hps::text
