#include "prefs/selection.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "core/error.hpp"
#include "prefs/losses.hpp"
#include "prefs/ranking.hpp"

namespace hps::prefs {
namespace {

// One prompt in rank order; K positions, the first n valid.
struct Row {
  int64_t K = 0, n = 0;
  std::vector<int64_t> order;   // [K] slot at rank position j (invalid slots after the valid ones)
  std::vector<double> reward;   // [K] rank order
  std::vector<int64_t> tier;    // [K] tie group; K at invalid positions
  int64_t tiers = 0;            // number of tie groups

  // Rank positions [first, last) of tier t (tiers are contiguous in rank order).
  std::pair<int64_t, int64_t> span(int64_t t) const {
    const auto b = std::find(tier.begin(), tier.begin() + n, t) - tier.begin();
    auto e = b;
    while (e < n && tier[static_cast<size_t>(e)] == t) ++e;
    return {b, e};
  }
};

Row rank_row(const double* reward, const bool* valid, int64_t K, Ties ties) {
  Row r;
  r.K = K;
  r.order.resize(static_cast<size_t>(K));
  std::iota(r.order.begin(), r.order.end(), 0);
  // Stable: equal rewards keep slot order; invalid slots last.
  std::stable_sort(r.order.begin(), r.order.end(), [&](int64_t a, int64_t b) {
    if (valid[a] != valid[b]) return valid[a];
    return valid[a] && reward[a] > reward[b];
  });
  for (int64_t k = 0; k < K; ++k) r.n += valid[k] ? 1 : 0;
  r.reward.assign(static_cast<size_t>(K), 0.0);
  r.tier.assign(static_cast<size_t>(K), K);
  for (int64_t j = 0; j < r.n; ++j) {
    const auto sj = static_cast<size_t>(j);
    r.reward[sj] = reward[r.order[sj]];
    const bool same = j > 0 && ties == Ties::exclude && r.reward[sj] == r.reward[sj - 1];
    r.tier[sj] = j == 0 ? 0 : r.tier[sj - 1] + (same ? 0 : 1);
  }
  r.tiers = r.n == 0 ? 0 : r.tier[static_cast<size_t>(r.n - 1)] + 1;
  return r;
}

// Smallest position j with u < CDF_j among q_j > 0 (inverse CDF in float64); never a position with q = 0.
int64_t inverse_cdf(const std::vector<double>& q, double u) {
  double cdf = 0.0;
  int64_t last = -1;
  for (size_t j = 0; j < q.size(); ++j) {
    if (q[j] <= 0.0) continue;
    cdf += q[j];
    last = static_cast<int64_t>(j);
    if (u < cdf) return last;
  }
  return last;  // rounding: u ≥ the float sum of q
}

// One uniform u → index in [0, m): floor(u·m), clamped (u < 1, but u·m may round up to m).
int64_t uniform_index(double u, int64_t m) {
  return std::min<int64_t>(static_cast<int64_t>(std::floor(u * static_cast<double>(m))), m - 1);
}

struct RowTerm {
  std::vector<double> anchor, negative;
  double log_n = 0.0;
};

// Uniform weights over the positions of tier t.
void fill_tier(std::vector<double>& w, const Row& r, int64_t t) {
  const auto [b, e] = r.span(t);
  for (auto j = b; j < e; ++j) w[static_cast<size_t>(j)] = 1.0 / static_cast<double>(e - b);
}

// HPS term with anchor position a (0: eq. (8)-(10); 1: L2 of Appendix E): the anchor's tier shares the
// preferred weight; negatives are the strictly worse tiers, weighted by q ∝ e^{γ r} (eq. 9), or one of
// them drawn from q with u (single-sample HPS).
RowTerm hps_row(const Row& r, const LossConfig& c, int64_t a, double u) {
  RowTerm t{std::vector<double>(static_cast<size_t>(r.K), 0.0), std::vector<double>(static_cast<size_t>(r.K), 0.0), 0.0};
  const int64_t anchor_tier = r.tier[static_cast<size_t>(a)];
  const int64_t first = r.span(anchor_tier).second;  // the first negative: negatives are [first, n)
  if (first >= r.n) return t;                        // every response ties with the anchor: no preference
  double m = -std::numeric_limits<double>::infinity();
  for (auto j = first; j < r.n; ++j) m = std::max(m, c.gamma * r.reward[static_cast<size_t>(j)]);
  double z = 0.0;
  for (auto j = first; j < r.n; ++j) z += std::exp(c.gamma * r.reward[static_cast<size_t>(j)] - m);
  std::vector<double> q(static_cast<size_t>(r.K), 0.0);
  for (auto j = first; j < r.n; ++j) q[static_cast<size_t>(j)] = std::exp(c.gamma * r.reward[static_cast<size_t>(j)] - m) / z;
  if (c.preference == Preference::hps) {
    t.negative[static_cast<size_t>(inverse_cdf(q, u))] = 1.0;
  } else {
    t.negative = q;
  }
  fill_tier(t.anchor, r, anchor_tier);
  if (c.n_factor == NFactor::n) t.log_n = std::log(static_cast<double>(r.n - first));
  return t;
}

// BT: one pair by `pair_rule`, in tiers. max_min: the best tier against the worst; max_max: against the
// second; max_random: against one uniform response of a worse tier (u0); random: u0 picks a uniform
// response, u1 a uniform one of another tier, the better of the two preferred.
RowTerm bt_row(const Row& r, PairRule rule, double u0, double u1) {
  RowTerm t{std::vector<double>(static_cast<size_t>(r.K), 0.0), std::vector<double>(static_cast<size_t>(r.K), 0.0), 0.0};
  if (r.tiers < 2) return t;
  const int64_t m0 = r.span(0).second;  // the best tier is [0, m0)
  switch (rule) {
    case PairRule::max_min: fill_tier(t.anchor, r, 0); fill_tier(t.negative, r, r.tiers - 1); break;
    case PairRule::max_max: fill_tier(t.anchor, r, 0); fill_tier(t.negative, r, 1); break;
    case PairRule::max_random:
      fill_tier(t.anchor, r, 0);
      t.negative[static_cast<size_t>(m0 + uniform_index(u0, r.n - m0))] = 1.0;
      break;
    case PairRule::random: {
      const int64_t i = uniform_index(u0, r.n);
      std::vector<int64_t> others;
      for (int64_t j = 0; j < r.n; ++j)
        if (r.tier[static_cast<size_t>(j)] != r.tier[static_cast<size_t>(i)]) others.push_back(j);
      const int64_t j = others[static_cast<size_t>(uniform_index(u1, static_cast<int64_t>(others.size())))];
      t.anchor[static_cast<size_t>(std::min(i, j))] = 1.0;
      t.negative[static_cast<size_t>(std::max(i, j))] = 1.0;
      break;
    }
  }
  return t;
}

int64_t first_positive(const std::vector<double>& w) {
  for (size_t j = 0; j < w.size(); ++j)
    if (w[j] > 0) return static_cast<int64_t>(j);
  return 0;
}

at::Tensor rows_tensor(const std::vector<std::vector<double>>& rows, int64_t K) {
  std::vector<double> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return at::tensor(flat, at::kDouble).view({static_cast<int64_t>(rows.size()), K});
}

// One prompt's terms and what it reads; positions in rank order.
struct RowSelection {
  std::vector<RowTerm> terms;
  std::vector<uint8_t> read;  // [K] slot order
  int64_t chosen = 0, rejected = 0, rejected2 = 0;
};

RowSelection select_row(const Row& r, const LossConfig& c, double u0, double u1) {
  RowSelection out;
  if (c.preference == Preference::bt) out.terms.push_back(bt_row(r, c.pair_rule, u0, u1));
  if (c.preference == Preference::hps || c.preference == Preference::hps_full) {
    out.terms.push_back(hps_row(r, c, 0, u0));
    if (c.multi_preferred) out.terms.push_back(hps_row(r, c, 1, u1));
  }
  const bool pref = r.tiers >= 2;
  out.read.assign(static_cast<size_t>(r.K), 0);
  for (int64_t j = 0; j < r.n; ++j) {
    const auto sj = static_cast<size_t>(j);
    bool used = c.preference == Preference::pl;  // PL reads the whole ranking
    for (const auto& t : out.terms) used = used || t.anchor[sj] > 0 || t.negative[sj] > 0;
    out.read[static_cast<size_t>(r.order[sj])] = used || (!pref && j == 0);  // no preference: the best, for metrics
  }
  // Reported pair: the first preferred and the first (hardest) negative; PL: the best and the best of the
  // second tier.
  const auto& t = out.terms;
  out.chosen = t.empty() ? 0 : first_positive(t[0].anchor);
  out.rejected = !pref ? 0 : t.empty() ? r.span(1).first : first_positive(t[0].negative);
  out.rejected2 = t.size() > 1 ? first_positive(t[1].negative) : 0;
  return out;
}

// The draws as [B, 2] float64 on the CPU for stochastic cells (undefined otherwise), checked.
at::Tensor checked_draws(const at::Tensor& draws, const LossConfig& c, int64_t B) {
  if (!is_stochastic(c)) return {};
  if (!draws.defined() || draws.dim() != 2 || draws.size(0) != B || draws.size(1) != 2)
    throw InputError("loss '" + std::string(to_string(c.preference)) + "' is stochastic and needs draws [B, 2]");
  at::Tensor u = draws.to(at::kCPU, at::kDouble).contiguous();
  if (!((u >= 0) & (u < 1)).all().item<bool>()) throw InputError("draws must lie in [0, 1) (see draw_uniforms)");
  return u;
}

// Prompt b's row, ranked, after the value rules (finite rewards, enough responses).
Row checked_row(const double* rw, const bool* vd, int64_t b, int64_t K, const LossConfig& c) {
  for (int64_t k = 0; k < K; ++k)
    if (vd[k] && !std::isfinite(rw[k]))
      throw NumericError("preference batch: field 'reward' is not finite at prompt " + std::to_string(b) + ", slot " +
                         std::to_string(k) + " (rule: every valid response needs finite values)");
  Row r = rank_row(rw, vd, K, c.ties);
  const int64_t min_responses = c.multi_preferred ? 3 : 2;
  if (r.n < min_responses)
    throw InputError("preference batch: prompt " + std::to_string(b) + " has " + std::to_string(r.n) +
                     " valid response(s); this loss needs at least " + std::to_string(min_responses) +
                     " (K = 1 gives no preference)");
  return r;
}

}  // namespace

Selection select_slots(const at::Tensor& reward_in, const at::Tensor& valid_in, const LossConfig& c,
                       const at::Tensor& draws) {
  validate(c);
  if (!reward_in.defined() || reward_in.dim() != 2 || reward_in.size(0) < 1 || reward_in.size(1) < 1)
    throw InputError("preference batch: field 'reward' must be [B, K] with B, K ≥ 1");
  const int64_t B = reward_in.size(0), K = reward_in.size(1);
  at::Tensor reward = reward_in.detach().to(at::kCPU, at::kDouble).contiguous();  // annotations: never differentiated
  at::Tensor valid = valid_in.defined() ? valid_in.to(at::kCPU).contiguous() : at::ones({B, K}, at::kBool);
  if (valid.sizes() != reward.sizes() || valid.scalar_type() != at::kBool)
    throw InputError("preference batch: field 'valid' must be bool with the shape of 'reward'");
  const at::Tensor u = checked_draws(draws, c, B);  // [B, 2] or undefined
  std::vector<std::vector<double>> anchor[2], negative[2];
  std::vector<double> log_n[2];
  std::vector<int64_t> order, tier, count, has_pref, read, chosen, rejected, rejected2;
  for (int64_t b = 0; b < B; ++b) {
    const Row r = checked_row(reward.data_ptr<double>() + b * K, valid.data_ptr<bool>() + b * K, b, K, c);
    const double* ub = u.defined() ? u.data_ptr<double>() + b * 2 : nullptr;
    const RowSelection sel = select_row(r, c, ub ? ub[0] : 0.0, ub ? ub[1] : 0.0);
    for (size_t i = 0; i < sel.terms.size(); ++i) {
      anchor[i].push_back(sel.terms[i].anchor);
      negative[i].push_back(sel.terms[i].negative);
      log_n[i].push_back(sel.terms[i].log_n);
    }
    order.insert(order.end(), r.order.begin(), r.order.end());
    tier.insert(tier.end(), r.tier.begin(), r.tier.end());
    read.insert(read.end(), sel.read.begin(), sel.read.end());
    count.push_back(r.n), has_pref.push_back(r.tiers >= 2);
    chosen.push_back(sel.chosen), rejected.push_back(sel.rejected), rejected2.push_back(sel.rejected2);
  }
  Selection s;
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  s.order = at::tensor(order, i64).view({B, K});
  s.tier = at::tensor(tier, i64).view({B, K});
  s.count = at::tensor(count, i64);
  s.valid = at::arange(K, i64).unsqueeze(0) < s.count.unsqueeze(1);
  s.has_pref = at::tensor(has_pref, i64).to(at::kBool);
  s.chosen = at::tensor(chosen, i64);
  s.rejected = at::tensor(rejected, i64);
  s.rejected2 = at::tensor(rejected2, i64);
  s.read = at::tensor(read, i64).view({B, K}).to(at::kBool);
  const int64_t n_terms = c.preference == Preference::pl ? 0 : (c.multi_preferred ? 2 : 1);
  for (int64_t i = 0; i < n_terms; ++i)
    s.terms.push_back({rows_tensor(anchor[i], K), rows_tensor(negative[i], K), at::tensor(log_n[i], at::kDouble)});
  s.draws = u;
  return s;
}

Selection stack_selections(const std::vector<Selection>& rows) {
  if (rows.empty()) throw InternalError("stack_selections: no rows");
  int64_t K = 0;
  for (const auto& r : rows) K = std::max(K, r.order.size(1));
  // Pads [1, k] to [1, K]: positions k.. are invalid and map to slots k.. (a permutation stays one).
  auto pad = [&](const at::Tensor& t, int64_t k, double v) { return at::constant_pad_nd(t, {0, K - k}, v); };
  Selection s;
  std::vector<at::Tensor> order, valid, tier, read, anchor[2], negative[2], log_n[2], draws;
  for (const auto& r : rows) {
    const int64_t k = r.order.size(1);
    order.push_back(at::cat({r.order, at::arange(k, K, r.order.options()).unsqueeze(0)}, 1));
    valid.push_back(pad(r.valid, k, 0));
    tier.push_back(pad(r.tier, k, static_cast<double>(K)).masked_fill(pad(r.valid, k, 0).logical_not(), K));
    read.push_back(pad(r.read, k, 0));
    for (size_t i = 0; i < r.terms.size(); ++i) {
      anchor[i].push_back(pad(r.terms[i].anchor, k, 0));
      negative[i].push_back(pad(r.terms[i].negative, k, 0));
      log_n[i].push_back(r.terms[i].log_n);
    }
    if (r.draws.defined()) draws.push_back(r.draws);
  }
  s.order = at::cat(order);
  s.valid = at::cat(valid);
  s.tier = at::cat(tier);
  s.read = at::cat(read);
  std::vector<at::Tensor> count, has_pref, chosen, rejected, rejected2;
  for (const auto& r : rows) {
    count.push_back(r.count), has_pref.push_back(r.has_pref), chosen.push_back(r.chosen);
    rejected.push_back(r.rejected), rejected2.push_back(r.rejected2);
  }
  s.count = at::cat(count);
  s.has_pref = at::cat(has_pref);
  s.chosen = at::cat(chosen);
  s.rejected = at::cat(rejected);
  s.rejected2 = at::cat(rejected2);
  for (size_t i = 0; i < rows[0].terms.size(); ++i)
    s.terms.push_back({at::cat(anchor[i]), at::cat(negative[i]), at::cat(log_n[i])});
  if (draws.size() == rows.size()) s.draws = at::cat(draws);
  return s;
}

std::vector<int64_t> read_slots(const Selection& s, int64_t b) {
  std::vector<int64_t> out;
  const at::Tensor row = s.read[b];
  for (int64_t k = 0; k < row.size(0); ++k)
    if (row[k].item<bool>()) out.push_back(k);
  return out;
}

}  // namespace hps::prefs
