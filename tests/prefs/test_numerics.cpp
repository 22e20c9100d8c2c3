// Numerics and error contracts of the loss core: extreme log-probs, ties, K = 1, NaN, bad shapes.
#include <ATen/CPUGeneratorImpl.h>

#include "core/error.hpp"
#include "prefs/helpers.hpp"
#include "test_util.hpp"

namespace hps::test {
namespace {

auto dbl = at::TensorOptions().dtype(at::kDouble);

prefs::PrefBatch simple(int64_t B, int64_t K) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  return {-at::rand({B, K}, gen, dbl) * 30, -at::rand({B, K}, gen, dbl) * 30, at::randint(1, 20, {B, K}, gen, dbl),
          at::randn({B, K}, gen, dbl), {}, {}};
}

// Runs the cell with gradients on policy_logp; expects a finite loss and finite gradients.
prefs::LossResult run_finite(const prefs::PrefBatch& b, const prefs::LossConfig& c, const at::Tensor& draws) {
  prefs::PrefBatch x = b;
  x.policy_logp = b.policy_logp.clone().set_requires_grad(true);
  auto res = prefs::preference_loss(x, c, draws);
  res.loss.backward();
  EXPECT_TRUE(std::isfinite(res.loss.item<double>()));
  EXPECT_TRUE(at::isfinite(x.policy_logp.grad()).all().item<bool>());
  return res;
}

TEST(LossNumerics, FiniteAtExtremeLogProbs) {
  for (auto dtype : {at::kDouble, at::kFloat}) {
    auto b = simple(4, 5);
    b.policy_logp = at::full({4, 5}, -1e4, dbl).to(dtype);
    b.policy_logp[0][1] = 0.0;  // one very likely response next to very unlikely ones
    b.ref_logp = at::zeros({4, 5}, dbl).to(dtype);
    b.ref_logp[1][2] = -1e4;
    at::Tensor draws = at::rand({4, 2}, dbl);
    for (auto c : all_cells()) {
      SCOPED_TRACE(describe(c));
      run_finite(b, c, draws);
    }
  }
}

TEST(LossNumerics, AllTiedRewardsCarryNoPreference) {
  // ties = exclude: no prompt has a preference; the loss is 0 with zero (finite) gradients, every prompt counted.
  auto b = simple(3, 4);
  b.reward = at::full({3, 4}, 0.7, dbl);
  at::Tensor draws = at::rand({3, 2}, dbl);
  for (auto c : all_cells()) {
    SCOPED_TRACE(describe(c));
    auto res = run_finite(b, c, draws);
    EXPECT_EQ(res.no_preference, 3);
    EXPECT_EQ(res.loss.item<double>(), 0.0);
    EXPECT_TRUE((res.rejected == -1).all().item<bool>());
    // ties = by_slot (the earlier rule): the first slot is preferred, the other tied responses dispreferred.
    c.ties = prefs::Ties::by_slot;
    res = run_finite(b, c, draws);
    EXPECT_EQ(res.no_preference, 0);
    if (c.preference != prefs::Preference::bt || c.pair_rule != prefs::PairRule::random)
      EXPECT_TRUE((res.chosen == 0).all().item<bool>());
    EXPECT_TRUE((res.rejected != res.chosen).all().item<bool>());
  }
  prefs::LossConfig c;
  c.preference = prefs::Preference::hps_full;
  c.gamma = 5.0;
  c.ties = prefs::Ties::by_slot;
  auto res = prefs::preference_loss(b, c, at::Tensor());
  EXPECT_TRUE((res.per_prompt > 0).all().item<bool>());  // by_slot: three tied negatives all count
}

TEST(LossNumerics, SingleResponseIsAClearError) {
  auto b = simple(3, 4);
  b.valid = at::ones({3, 4}, dbl).to(at::kBool);
  b.valid[1].fill_(false);
  b.valid[1][2] = true;
  auto msg = message_of<InputError>([&] { prefs::preference_loss(b, prefs::LossConfig{}, at::rand({3, 2}, dbl)); });
  EXPECT_NE(msg.find("prompt 1 has 1 valid response"), std::string::npos) << msg;
  EXPECT_NE(msg.find("K = 1"), std::string::npos) << msg;
}

TEST(LossNumerics, NanInputIsAClearErrorButPaddingMayHoldAnything) {
  auto b = simple(2, 3);
  b.policy_logp[1][2] = NAN;
  prefs::LossConfig c;
  c.preference = prefs::Preference::pl;
  auto msg = message_of<NumericError>([&] { prefs::preference_loss(b, c, at::Tensor()); });
  EXPECT_NE(msg.find("'policy_logp' is not finite at prompt 1, slot 2"), std::string::npos) << msg;
  b.reward[0][0] = INFINITY;
  b.policy_logp[1][2] = 0.0;
  msg = message_of<NumericError>([&] { prefs::preference_loss(b, c, at::Tensor()); });
  EXPECT_NE(msg.find("'reward' is not finite at prompt 0, slot 0"), std::string::npos) << msg;

  auto ok = simple(2, 3);
  ok.valid = at::ones({2, 3}, dbl).to(at::kBool);
  ok.valid[0][1] = false;
  ok.policy_logp[0][1] = NAN;  // padding: ignored, and no NaN leaks into the loss or its gradient
  ok.length[0][1] = 0;
  for (auto cell : all_cells()) {
    SCOPED_TRACE(describe(cell));
    run_finite(ok, cell, at::rand({2, 2}, dbl));
  }
}

TEST(LossNumerics, BadShapesLengthsAndConfigsAreClearErrors) {
  auto b = simple(2, 3);
  prefs::LossConfig c;
  c.preference = prefs::Preference::pl;
  auto bad = b;
  bad.ref_logp = at::zeros({2, 4}, dbl);
  auto msg = message_of<InputError>([&] { prefs::preference_loss(bad, c, at::Tensor()); });
  EXPECT_NE(msg.find("'ref_logp' has shape [2, 4], expected [2, 3]"), std::string::npos) << msg;

  bad = b;
  bad.length = b.length.clone();  // PrefBatch copies share storage
  bad.length[0][0] = 0;
  msg = message_of<InputError>([&] { prefs::preference_loss(bad, c, at::Tensor()); });
  EXPECT_NE(msg.find("'length' is below 1 at prompt 0, slot 0"), std::string::npos) << msg;

  bad = b;
  bad.ref_logp = at::Tensor();
  msg = message_of<InputError>([&] { prefs::preference_loss(bad, c, at::Tensor()); });
  EXPECT_NE(msg.find("'ref_logp' is missing"), std::string::npos) << msg;
  c.objective = prefs::Objective::simpo;  // reference-free
  EXPECT_NO_THROW(prefs::preference_loss(bad, c, at::Tensor()));

  c = prefs::LossConfig{};
  c.beta = 0;
  msg = message_of<ConfigError>([&] { prefs::preference_loss(b, c, at::rand({2, 2}, dbl)); });
  EXPECT_NE(msg.find("'beta' must be finite and > 0"), std::string::npos) << msg;
  c = prefs::LossConfig{};
  c.label_smoothing = 0.5;
  msg = message_of<ConfigError>([&] { prefs::preference_loss(b, c, at::rand({2, 2}, dbl)); });
  EXPECT_NE(msg.find("'label_smoothing' must be in [0, 0.5)"), std::string::npos) << msg;
  c = prefs::LossConfig{};
  c.preference = prefs::Preference::bt;
  c.multi_preferred = true;
  msg = message_of<ConfigError>([&] { prefs::preference_loss(b, c, at::Tensor()); });
  EXPECT_NE(msg.find("'multi_preferred' (Appendix E) needs preference 'hps' or 'hps_full'"), std::string::npos) << msg;

  c = prefs::LossConfig{};  // stochastic cell without draws
  msg = message_of<InputError>([&] { prefs::preference_loss(b, c, at::Tensor()); });
  EXPECT_NE(msg.find("needs draws [B, 2]"), std::string::npos) << msg;

  c.multi_preferred = true;  // Appendix E needs a third response
  auto two = simple(2, 2);
  msg = message_of<InputError>([&] { prefs::preference_loss(two, c, at::rand({2, 2}, dbl)); });
  EXPECT_NE(msg.find("needs at least 3"), std::string::npos) << msg;
}

TEST(LossNumerics, HalfPrecisionInputIsPromoted) {
  auto b = simple(2, 4);
  auto h = b;
  h.policy_logp = b.policy_logp.to(at::kHalf);
  h.ref_logp = b.ref_logp.to(at::kBFloat16);
  prefs::LossConfig c;
  c.preference = prefs::Preference::hps_full;
  auto res = prefs::preference_loss(h, c, at::Tensor());
  EXPECT_EQ(res.loss.scalar_type(), at::kFloat);
  auto ref = prefs::preference_loss(b, c, at::Tensor());
  EXPECT_NEAR(res.loss.item<double>(), ref.loss.item<double>(), 0.05);
}

TEST(LossMetrics, Table1MarginsOnTheReportedPair) {
  // K = 2: chosen is the higher reward; RM_DPO, RM_R-DPO by hand.
  at::Tensor lp = at::tensor({-10.0, -14.0}, dbl).unsqueeze(0), ref = at::tensor({-12.0, -13.0}, dbl).unsqueeze(0);
  at::Tensor len = at::tensor({20.0, 8.0}, dbl).unsqueeze(0), rw = at::tensor({1.0, 0.0}, dbl).unsqueeze(0);
  prefs::LossConfig c;
  c.preference = prefs::Preference::bt;
  auto res = prefs::preference_loss({lp, ref, len, rw, {}, {}}, c, at::Tensor());
  EXPECT_NEAR(res.margins.rm_dpo.item<double>(), 2.0 - (-1.0), 1e-12);
  EXPECT_NEAR(res.margins.rm_rdpo.item<double>(), 3.0 - 0.01 * 12, 1e-12);
  EXPECT_NEAR(res.margins.chosen_reward.item<double>(), 0.2, 1e-12);
  EXPECT_NEAR(res.margins.rejected_reward.item<double>(), -0.1, 1e-12);
  EXPECT_EQ(res.margins.accuracy.item<double>(), 1.0);
}

}  // namespace
}  // namespace hps::test
