#include "eval/bleu.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>
#include <regex>
#include <sstream>

#include "core/error.hpp"

namespace hps::eval {

namespace {

std::vector<std::string> split_ws(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// n-gram counts of a token sequence.
std::map<std::vector<std::string>, long> ngrams(const std::vector<std::string>& t, size_t n) {
  std::map<std::vector<std::string>, long> c;
  for (size_t i = 0; i + n <= t.size(); ++i) ++c[std::vector<std::string>(t.begin() + static_cast<std::ptrdiff_t>(i), t.begin() + static_cast<std::ptrdiff_t>(i + n))];
  return c;
}

// Clipped matches and total hypothesis n-grams.
std::pair<long, long> matches(const std::vector<std::string>& hyp, const std::vector<std::string>& ref, size_t n) {
  const auto h = ngrams(hyp, n), r = ngrams(ref, n);
  long match = 0, total = 0;
  for (const auto& [g, c] : h) {
    total += c;
    auto it = r.find(g);
    if (it != r.end()) match += std::min(c, it->second);
  }
  return {match, total};
}

}  // namespace

double nltk_sentence_bleu(const std::string& hypothesis, const std::string& reference) {
  const auto hyp = split_ws(hypothesis), ref = split_ws(reference);
  long num[4], den[4];
  for (size_t n = 1; n <= 4; ++n) {
    auto [m, t] = matches(hyp, ref, n);
    num[n - 1] = m, den[n - 1] = std::max<long>(1, t);  // NLTK: Fraction(m, max(1, t))
  }
  if (num[0] == 0) return 0.0;  // no unigram match: NLTK returns 0 outright
  const double c = static_cast<double>(hyp.size()), r = static_cast<double>(ref.size());
  const double bp = c > r ? 1.0 : (c == 0 ? 0.0 : std::exp(1.0 - r / c));
  double s = 0;
  for (int n = 0; n < 4; ++n) {
    // method0: a zero precision becomes sys.float_info.min (the smallest normal double)
    const double p = num[n] == 0 ? DBL_MIN : static_cast<double>(num[n]) / static_cast<double>(den[n]);
    s += 0.25 * std::log(p);
  }
  return bp * std::exp(s);
}

std::vector<std::string> tokenize_13a(const std::string& input) {
  std::string line = input;
  auto replace_all = [&](const std::string& a, const std::string& b) {
    for (size_t p = line.find(a); p != std::string::npos; p = line.find(a, p + b.size())) line.replace(p, a.size(), b);
  };
  replace_all("<skipped>", "");
  replace_all("-\n", "");
  replace_all("\n", " ");
  if (line.find('&') != std::string::npos) {
    replace_all("&quot;", "\"");
    replace_all("&amp;", "&");
    replace_all("&lt;", "<");
    replace_all("&gt;", ">");
  }
  line = " " + line + " ";
  // sacrebleu's TokenizerRegexp rules, in order (ASCII classes; multibyte characters pass through).
  static const std::regex punct(R"(([\x7B-\x7E\x5B-\x60\x20-\x26\x28-\x2B\x3A-\x40\x2F]))");
  static const std::regex period_comma_after(R"(([^0-9])([\.,]))");
  static const std::regex period_comma_before(R"(([\.,])([^0-9]))");
  static const std::regex dash_after_digit(R"(([0-9])(-))");
  line = std::regex_replace(line, punct, " $1 ");
  line = std::regex_replace(line, period_comma_after, "$1 $2 ");
  line = std::regex_replace(line, period_comma_before, " $1 $2");
  line = std::regex_replace(line, dash_after_digit, "$1 $2 ");
  return split_ws(line);
}

CorpusBleu sacrebleu_corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::string>& refs) {
  if (hyps.size() != refs.size())
    throw InputError("corpus BLEU: " + std::to_string(hyps.size()) + " hypotheses but " + std::to_string(refs.size()) + " references");
  long correct[4] = {0, 0, 0, 0}, total[4] = {0, 0, 0, 0};
  CorpusBleu b;
  for (size_t i = 0; i < hyps.size(); ++i) {
    const auto h = tokenize_13a(hyps[i]), r = tokenize_13a(refs[i]);
    b.sys_len += static_cast<long>(h.size());
    b.ref_len += static_cast<long>(r.size());
    for (size_t n = 1; n <= 4; ++n) {
      auto [m, t] = matches(h, r, n);
      correct[n - 1] += m, total[n - 1] += t;
    }
  }
  b.precisions.assign(4, 0.0);
  double smooth = 1.0;
  for (int n = 0; n < 4; ++n) {
    if (total[n] == 0) break;
    if (correct[n] == 0) {
      smooth *= 2;  // 'exp' smoothing
      b.precisions[static_cast<size_t>(n)] = 100.0 / (smooth * static_cast<double>(total[n]));
    } else {
      b.precisions[static_cast<size_t>(n)] = 100.0 * static_cast<double>(correct[n]) / static_cast<double>(total[n]);
    }
  }
  b.bp = b.sys_len >= b.ref_len ? 1.0 : (b.sys_len > 0 ? std::exp(1.0 - static_cast<double>(b.ref_len) / static_cast<double>(b.sys_len)) : 0.0);
  double s = 0;
  for (double p : b.precisions) s += p > 0 ? std::log(p) : -9999999999.0;  // sacrebleu's my_log
  b.score = b.bp * std::exp(s / 4.0);
  return b;
}

}  // namespace hps::eval
