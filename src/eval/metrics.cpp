#include "eval/metrics.hpp"

#include <algorithm>
#include <random>

#include "core/error.hpp"

namespace hps::eval {

RewardStats reward_stats(const std::vector<std::vector<double>>& rewards) {
  RewardStats s;
  double sum = 0, top = 0;
  for (const auto& r : rewards) {
    if (r.empty()) continue;
    ++s.prompts;
    for (double v : r) sum += v, ++s.samples;
    top += *std::max_element(r.begin(), r.end());
  }
  if (s.samples) s.mean = sum / static_cast<double>(s.samples);
  if (s.prompts) s.top1 = top / static_cast<double>(s.prompts);
  return s;
}

WinRate win_rate(const std::vector<double>& a, const std::vector<double>& b, double tie_band, int64_t bootstrap,
                 uint64_t seed) {
  if (a.size() != b.size()) throw InputError("win rate: " + std::to_string(a.size()) + " vs " + std::to_string(b.size()) + " prompts");
  WinRate w;
  w.prompts = static_cast<int64_t>(a.size());
  if (a.empty()) return w;
  std::vector<int> outcome(a.size());  // 1 win, 0 tie, −1 lose
  for (size_t i = 0; i < a.size(); ++i) outcome[i] = a[i] - b[i] > tie_band ? 1 : (b[i] - a[i] > tie_band ? -1 : 0);
  const auto n = static_cast<double>(a.size());
  w.win = static_cast<double>(std::count(outcome.begin(), outcome.end(), 1)) / n;
  w.tie = static_cast<double>(std::count(outcome.begin(), outcome.end(), 0)) / n;
  w.lose = static_cast<double>(std::count(outcome.begin(), outcome.end(), -1)) / n;
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<size_t> pick(0, a.size() - 1);
  std::vector<double> wins;
  for (int64_t r = 0; r < bootstrap; ++r) {
    int64_t k = 0;
    for (size_t i = 0; i < a.size(); ++i) k += outcome[pick(gen)] == 1;
    wins.push_back(static_cast<double>(k) / n);
  }
  if (!wins.empty()) {
    std::sort(wins.begin(), wins.end());
    w.win_lo = wins[static_cast<size_t>(0.025 * static_cast<double>(wins.size() - 1))];
    w.win_hi = wins[static_cast<size_t>(0.975 * static_cast<double>(wins.size() - 1))];
  }
  return w;
}

Margins reward_margins(const std::vector<double>& pol_w, const std::vector<double>& ref_w, const std::vector<int64_t>& len_w,
                       const std::vector<double>& pol_l, const std::vector<double>& ref_l, const std::vector<int64_t>& len_l,
                       double alpha) {
  Margins m;
  m.pairs = static_cast<int64_t>(pol_w.size());
  for (size_t i = 0; i < pol_w.size(); ++i) {
    const double d = (pol_w[i] - ref_w[i]) - (pol_l[i] - ref_l[i]);
    m.rm_dpo += d;
    m.rm_rdpo += d - alpha * static_cast<double>(len_w[i] - len_l[i]);
    m.accuracy += d > 0;
  }
  if (m.pairs) {
    for (double* v : {&m.rm_dpo, &m.rm_rdpo, &m.accuracy}) *v /= static_cast<double>(m.pairs);
  }
  return m;
}

}  // namespace hps::eval
