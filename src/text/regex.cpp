#include "text/regex.hpp"

#include <oniguruma.h>

#include <algorithm>
#include <mutex>
#include <string>

#include "core/error.hpp"
#include "text/utf8.hpp"

namespace hps::text {

struct Regex::Impl {
  regex_t* re = nullptr;
  std::string pattern, where;
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
    // The backtracking budget is set per search (find_all), in proportion to the text.
    onig_set_retry_limit_in_search(0);  // 0 = unlimited for the search budget
  });
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& where) : impl_(std::make_unique<Impl>()) {
  init_oniguruma();
  impl_->pattern = pattern, impl_->where = where;
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
  // Backtracking budget per match: the patterns tokenizers use backtrack at most linearly (a 1 MB run of one
  // character needs more than Oniguruma's default 10^7); an exponential one, e.g. (\w|\w)+\d, runs out of it
  // in well under a second instead of never ending.
  const unsigned long budget = std::max<unsigned long>(10'000'000UL, 100UL * s.size());
  OnigMatchParam* param = onig_new_match_param();
  onig_initialize_match_param(param);
  onig_set_retry_limit_in_match_of_match_param(param, budget);
  const auto* begin = reinterpret_cast<const OnigUChar*>(s.data());
  const auto* end = begin + s.size();
  size_t pos = 0;
  while (pos <= s.size()) {
    const int r = onig_search_with_param(impl_->re, begin, end, begin + pos, end, region, ONIG_OPTION_NONE, param);
    if (r == ONIG_MISMATCH) break;
    if (r < 0) {
      OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
      onig_error_code_to_str(msg, r);
      onig_region_free(region, 1);
      onig_free_match_param(param);
      throw InputError(impl_->where + ": regex " + impl_->pattern + " failed at byte " + std::to_string(pos) + " of a " +
                       std::to_string(s.size()) + "-byte text: " + reinterpret_cast<char*>(msg) +
                       (r == ONIGERR_RETRY_LIMIT_IN_MATCH_OVER ? " (more than " + std::to_string(budget) +
                                                                     " backtracking steps: the pattern backtracks exponentially)"
                                                                 : std::string()));
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
  onig_free_match_param(param);
  return out;
}

}  // namespace hps::text
