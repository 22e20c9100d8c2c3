#include "text/regex.hpp"

#include <oniguruma.h>

#include <mutex>

#include "core/error.hpp"
#include "text/utf8.hpp"

namespace hps::text {

struct Regex::Impl {
  regex_t* re = nullptr;
  ~Impl() {
    if (re) onig_free(re);
  }
};

namespace {

void init_oniguruma() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    onig_initialize(&enc, 1);
    // A generous backtracking budget (the default, 10^7 per match, is too small for a 1 MB run of one
    // character): the patterns tokenizers use backtrack at most linearly.
    onig_set_retry_limit_in_match(1'000'000'000'000UL);
    onig_set_retry_limit_in_search(0);  // 0 = unlimited for the search budget
  });
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& where) : impl_(std::make_unique<Impl>()) {
  init_oniguruma();
  OnigErrorInfo info;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
  const int rc = onig_new(&impl_->re, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_RUBY, &info);
  if (rc != ONIG_NORMAL) {
    OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(msg, rc, &info);
    impl_->re = nullptr;
    throw InputError(where + ": regex " + pattern + " does not compile: " + reinterpret_cast<char*>(msg));
  }
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view s) const {
  std::vector<std::pair<size_t, size_t>> out;
  OnigRegion* region = onig_region_new();
  const auto* begin = reinterpret_cast<const OnigUChar*>(s.data());
  const auto* end = begin + s.size();
  size_t pos = 0;
  while (pos <= s.size()) {
    const int r = onig_search(impl_->re, begin, end, begin + pos, end, region, ONIG_OPTION_NONE);
    if (r == ONIG_MISMATCH) break;
    if (r < 0) {
      OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
      onig_error_code_to_str(msg, r);
      onig_region_free(region, 1);
      throw InputError(std::string("regex search failed: ") + reinterpret_cast<char*>(msg));
    }
    const auto b = static_cast<size_t>(region->beg[0]), e = static_cast<size_t>(region->end[0]);
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {
      if (b >= s.size()) break;
      pos = b + utf8_len(static_cast<unsigned char>(s[b]));
    }
  }
  onig_region_free(region, 1);
  return out;
}

}  // namespace hps::text
