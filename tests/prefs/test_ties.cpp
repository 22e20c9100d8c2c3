// Ties carry no preference (loss.ties = exclude): swapping the slots of two tied responses leaves every
// cell's loss unchanged — exactly for deterministic cells, and in expectation over the draws (computed
// exactly, draw by draw) for the sampled ones. One selection serves the forward and the loss: a float32
// re-ranking of float64 rewards would read a slot that was never forwarded, and the loss says so.
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>

#include <array>
#include <cmath>

#include "core/error.hpp"
#include "prefs/helpers.hpp"
#include "test_util.hpp"

namespace hps::test {
namespace {

auto dbl = at::TensorOptions().dtype(at::kDouble);

// Every cell: the grid of all_cells() plus cDPO / robust smoothing, n_factor = one and Appendix E.
std::vector<prefs::LossConfig> cells_with_variants() {
  std::vector<prefs::LossConfig> out = all_cells();
  for (auto c : all_cells()) {
    if (c.objective == prefs::Objective::dpo || c.objective == prefs::Objective::rdpo ||
        c.objective == prefs::Objective::simpo) {
      c.label_smoothing = 0.1;
      out.push_back(c);
      c.robust = true;
      out.push_back(c);
    }
  }
  for (auto c : all_cells()) {
    if (c.preference != prefs::Preference::hps && c.preference != prefs::Preference::hps_full) continue;
    c.n_factor = prefs::NFactor::one;
    out.push_back(c);
    c.n_factor = prefs::NFactor::n;
    c.multi_preferred = true;
    c.multi_lambda = 0.5;
    out.push_back(c);
  }
  return out;
}

// One prompt, K = 6, rewards with ties of every shape: best tied, a middle tie, worst tied.
prefs::PrefBatch prompt(const std::vector<double>& reward, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto K = static_cast<int64_t>(reward.size());
  at::Tensor lp = -at::rand({1, K}, gen, dbl) * 40 - 5;
  return {lp, lp + at::randn({1, K}, gen, dbl) * 2, at::randint(3, 30, {1, K}, gen, dbl),
          at::tensor(reward, dbl).view({1, K}), {}, {}};
}

prefs::PrefBatch swap_slots(const prefs::PrefBatch& b, int64_t i, int64_t j) {
  auto sw = [&](const at::Tensor& t) {
    at::Tensor s = t.clone();
    s.select(1, i).copy_(t.select(1, j));
    s.select(1, j).copy_(t.select(1, i));
    return s;
  };
  return {sw(b.policy_logp), sw(b.ref_logp), sw(b.length), sw(b.reward), {}, {}};
}

// The draws a cell can use and their probabilities, exactly: one draw per outcome, at the middle of its
// interval. HPS: the intervals of q (per term); BT max_random: n_neg equal intervals; BT random: n × the
// other tiers' count.
std::vector<std::pair<std::array<double, 2>, double>> outcomes(const prefs::PrefBatch& b, const prefs::LossConfig& c) {
  std::vector<std::pair<std::array<double, 2>, double>> out;
  if (!prefs::is_stochastic(c)) return {{{0.5, 0.5}, 1.0}};
  auto full = c;
  full.preference = prefs::Preference::hps_full;  // its terms hold q exactly; its tiers are the ranking's
  const auto s = prefs::select_slots(b.reward, {}, full, {});
  auto intervals = [](const at::Tensor& q) {  // [K] → (middle, width) of each q_j > 0
    std::vector<std::pair<double, double>> v;
    double cdf = 0;
    for (int64_t j = 0; j < q.size(0); ++j) {
      const double w = q[j].item<double>();
      if (w > 0) v.push_back({cdf + w / 2, w});
      cdf += w;
    }
    return v;
  };
  if (c.preference == prefs::Preference::hps) {
    auto i0 = intervals(s.terms[0].negative[0]);
    auto i1 = c.multi_preferred ? intervals(s.terms[1].negative[0]) : std::vector<std::pair<double, double>>{{0.5, 1.0}};
    for (auto [u0, p0] : i0)
      for (auto [u1, p1] : i1) out.push_back({{u0, u1}, p0 * p1});
    return out;
  }
  const int64_t n = s.count[0].item<int64_t>();
  const at::Tensor tier = s.tier[0];
  const int64_t best = (tier == 0).sum().item<int64_t>();
  if (c.pair_rule == prefs::PairRule::max_random) {
    for (int64_t t = 0; t < n - best; ++t) out.push_back({{(t + 0.5) / (n - best), 0.5}, 1.0 / (n - best)});
    return out;
  }
  for (int64_t i = 0; i < n; ++i) {  // random: i uniform, then uniform over the other tiers
    const int64_t others = n - (tier.narrow(0, 0, n) == tier[i]).sum().item<int64_t>();
    for (int64_t t = 0; t < others; ++t)
      out.push_back({{(i + 0.5) / n, (t + 0.5) / others}, 1.0 / n / others});
  }
  return out;
}

double expected_loss(const prefs::PrefBatch& b, const prefs::LossConfig& c) {
  double e = 0;
  for (const auto& [u, p] : outcomes(b, c))
    e += p * prefs::preference_loss(b, c, at::tensor({u[0], u[1]}, dbl).view({1, 2})).loss.item<double>();
  return e;
}

const std::vector<std::vector<double>> kTiedRewards = {
    {1.0, 0.0, 1.0, 0.5, 1.0, -1.0},  // three tied best
    {0.5, 0.2, 0.2, 0.9, 0.2, 0.0},   // a tied middle
    {2.0, -1.0, 0.3, -1.0, 1.0, 0.3},  // tied worst, another tied pair
    {3.0, 3.0, 1.0, 3.0, 1.0, 2.0},   // tied best and a tied pair below
};

// Every pair of tied slots of every reward pattern, for every cell: the loss (its expectation for sampled
// cells) is unchanged by the swap.
int64_t count_invariance_violations(prefs::Ties ties, double tol) {
  int64_t violations = 0;
  for (auto c : cells_with_variants()) {
    c.ties = ties;
    c.gamma = 1.3;
    for (size_t p = 0; p < kTiedRewards.size(); ++p) {
      const auto b = prompt(kTiedRewards[p], 11 + p);
      const double base = expected_loss(b, c);
      for (int64_t i = 0; i < 6; ++i)
        for (int64_t j = i + 1; j < 6; ++j) {
          if (kTiedRewards[p][static_cast<size_t>(i)] != kTiedRewards[p][static_cast<size_t>(j)]) continue;
          const double swapped = expected_loss(swap_slots(b, i, j), c);
          if (std::abs(swapped - base) > tol * std::max(1.0, std::abs(base))) {
            ++violations;
            if (ties == prefs::Ties::exclude)
              ADD_FAILURE() << describe(c) << " rewards #" << p << " swap " << i << "," << j << ": " << base << " vs "
                            << swapped;
          }
        }
    }
  }
  return violations;
}

TEST(Ties, SwappingTiedSlotsLeavesEveryCellUnchanged) {
  EXPECT_EQ(count_invariance_violations(prefs::Ties::exclude, 1e-12), 0);
}

TEST(Ties, BySlotBreaksTiesBySlotAsBefore) {
  // The old rule ranks tied responses by slot: the invariant must fail there, or the test above proves nothing.
  EXPECT_GT(count_invariance_violations(prefs::Ties::by_slot, 1e-12), 20);
}

TEST(Ties, TiedWithTheBestIsNeverANegative) {
  // rewards [1, 1, 0], γ = 5: under by_slot the tied slot 1 is the most heavily weighted negative (q = 0.993).
  prefs::LossConfig c;
  c.preference = prefs::Preference::hps_full;
  c.gamma = 5.0;
  at::Tensor reward = at::tensor({1.0, 1.0, 0.0}, dbl).view({1, 3});
  auto s = prefs::select_slots(reward, {}, c, {});
  EXPECT_EQ(s.terms[0].negative[0][1].item<double>(), 0.0);
  EXPECT_EQ(s.terms[0].negative[0][2].item<double>(), 1.0);
  EXPECT_EQ(s.terms[0].anchor[0][0].item<double>(), 0.5);
  EXPECT_EQ(s.terms[0].anchor[0][1].item<double>(), 0.5);
  c.ties = prefs::Ties::by_slot;
  s = prefs::select_slots(reward, {}, c, {});
  EXPECT_NEAR(s.terms[0].negative[0][1].item<double>(), 0.993, 1e-3);
}

TEST(Ties, AllTiedPromptsTrainNothingAndAreCounted) {
  for (const auto& c0 : cells_with_variants()) {
    auto c = c0;
    SCOPED_TRACE(describe(c));
    auto b = prompt({0.4, 0.4, 0.4, 0.4, 0.4, 0.4}, 3);
    auto other = prompt({1.0, 0.0, 0.5, 0.2, -1.0, 0.3}, 4);
    prefs::PrefBatch both{at::cat({b.policy_logp, other.policy_logp}).set_requires_grad(true),
                          at::cat({b.ref_logp, other.ref_logp}), at::cat({b.length, other.length}),
                          at::cat({b.reward, other.reward}), {}, {}};
    auto res = prefs::preference_loss(both, c, at::full({2, 2}, 0.3, dbl));
    EXPECT_EQ(res.no_preference, 1);
    EXPECT_FALSE(res.has_pref[0].item<bool>());
    EXPECT_EQ(res.per_prompt[0].item<double>(), 0.0);
    EXPECT_EQ(res.rejected[0].item<int64_t>(), -1);
    EXPECT_NEAR(res.loss.item<double>(), res.per_prompt[1].item<double>(), 1e-12);  // the mean skips it
    res.loss.backward();
    EXPECT_TRUE((both.policy_logp.grad()[0] == 0).all().item<bool>());  // no gradient from the tied prompt
  }
}

TEST(Selection, Float32CollisionReadsOnlyForwardedSlots) {
  // Distinct in float64, equal in float32: the selection made from the float64 rewards is the one the loss
  // uses, whatever dtype the batch carries.
  at::Tensor r64 = at::tensor({1.0, 1.0 + 1e-9, 0.0, -1.0}, dbl).view({1, 4});
  ASSERT_EQ(r64.to(at::kFloat)[0][0].item<float>(), r64.to(at::kFloat)[0][1].item<float>());
  prefs::LossConfig c;
  c.preference = prefs::Preference::bt;
  const auto sel = prefs::select_slots(r64, {}, c, {});
  EXPECT_EQ(prefs::read_slots(sel, 0), (std::vector<int64_t>{1, 3}));  // best = slot 1 alone, worst = slot 3
  at::Tensor lp = at::tensor({-9.0, -3.0, -7.0, -5.0}, at::kFloat).view({1, 4});
  prefs::PrefBatch batch{lp, lp - 1, at::full({1, 4}, 4.0, at::kFloat), r64.to(at::kFloat), {}, sel.read.clone()};
  auto res = prefs::preference_loss(batch, c, sel);
  EXPECT_EQ(res.chosen[0].item<int64_t>(), 1);
  EXPECT_EQ(res.rejected[0].item<int64_t>(), 3);
  // Re-ranking the float32 rewards (the old second selection) ties slots 0 and 1 and reads slot 0, which was
  // never forwarded: the loss refuses instead of reading its placeholder.
  const auto msg = message_of<InternalError>([&] { prefs::preference_loss(batch, c, at::Tensor()); });
  EXPECT_THAT(msg, ::testing::HasSubstr("reads slot 0, which was not forwarded"));
}

TEST(Selection, DrawNearACdfBoundaryIsDecidedOnce) {
  // A draw a hair below q's first CDF step: the forward and the loss see the same negative because the loss
  // does not draw again, it reads the selection's one-hot.
  prefs::LossConfig c;
  c.gamma = 0.0;  // q uniform over 3 negatives: CDF steps at 1/3, 2/3
  at::Tensor reward = at::tensor({2.0, 1.0, 0.0, -1.0}, dbl).view({1, 4});
  const double u = std::nextafter(1.0 / 3.0, 0.0);
  const auto sel = prefs::select_slots(reward, {}, c, at::tensor({u, 0.5}, dbl).view({1, 2}));
  const auto slots = prefs::read_slots(sel, 0);
  ASSERT_EQ(slots.size(), 2u);
  at::Tensor lp = at::tensor({-9.0, -3.0, -7.0, -5.0}, at::kFloat).view({1, 4});
  prefs::PrefBatch batch{lp, lp - 1, at::full({1, 4}, 4.0, at::kFloat), reward.to(at::kFloat), {}, sel.read.clone()};
  auto res = prefs::preference_loss(batch, c, sel);
  EXPECT_EQ(res.rejected[0].item<int64_t>(), slots[1]);
}

}  // namespace
}  // namespace hps::test
