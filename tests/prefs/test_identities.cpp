// Identities the paper's equations imply (§3, §4.2, Theorem 2) and ragged-K consistency.
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "prefs/helpers.hpp"

namespace hps::test {
namespace {

prefs::PrefBatch random_batch(int64_t B, int64_t K, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto opt = at::TensorOptions().dtype(at::kDouble);
  at::Tensor lp = -at::rand({B, K}, gen, opt) * 50 - 5;
  at::Tensor ref = lp + at::randn({B, K}, gen, opt) * 2;
  at::Tensor len = at::randint(3, 40, {B, K}, gen, opt);
  at::Tensor reward = at::randn({B, K}, gen, opt);
  return {lp, ref, len, reward, {}, {}};
}

std::vector<prefs::LossConfig> cells_with_smoothing() {
  auto cells = all_cells();
  for (auto o : {prefs::Objective::dpo, prefs::Objective::rdpo, prefs::Objective::simpo}) {
    for (bool robust : {false, true}) {
      prefs::LossConfig c;
      c.objective = o;
      c.label_smoothing = 0.15;
      c.robust = robust;
      for (auto p : {prefs::Preference::bt, prefs::Preference::pl, prefs::Preference::hps, prefs::Preference::hps_full}) {
        c.preference = p;
        cells.push_back(c);
      }
    }
  }
  return cells;
}

TEST(LossIdentities, PlAndHpsWithTwoResponsesEqualBt) {
  // eq. (5) for n = 2 reduces to BT; HPS with one dispreferred response (N = 1, q = 1) too.
  auto batch = random_batch(8, 2, 1);
  at::Tensor draws = at::rand({8, 2}, at::TensorOptions().dtype(at::kDouble));
  for (auto c : cells_with_smoothing()) {
    if (c.preference == prefs::Preference::bt) continue;
    SCOPED_TRACE(describe(c));
    prefs::LossConfig bt = c;
    bt.preference = prefs::Preference::bt;
    bt.pair_rule = prefs::PairRule::max_min;
    auto want = prefs::preference_loss(batch, bt, draws).per_prompt;
    auto got = prefs::preference_loss(batch, c, draws).per_prompt;
    EXPECT_TRUE(at::allclose(got, want, 1e-12, 1e-12)) << got << want;
  }
}

TEST(LossIdentities, HpsFullAtGammaZeroIsEquation6) {
  // γ = 0 makes q uniform, so N·Σ q_i e^{s_i} = Σ_{i≥2} e^{s_i}: L = −log(e^{s_1} / Σ_i e^{s_i}).
  auto batch = random_batch(6, 7, 2);
  prefs::LossConfig c;
  c.preference = prefs::Preference::hps_full;
  c.gamma = 0.0;
  auto got = prefs::preference_loss(batch, c, at::Tensor()).per_prompt;
  at::Tensor s = c.beta * (batch.policy_logp - batch.ref_logp);       // [B, K]
  at::Tensor best = batch.reward.argmax(1, true);                      // [B, 1]
  at::Tensor want = at::logsumexp(s, 1) - s.gather(1, best).squeeze(1);
  EXPECT_TRUE(at::allclose(got, want, 1e-12, 1e-12)) << got << want;
}

TEST(LossIdentities, HpsFullApproachesHardestNegativeAsGammaGrows) {
  // Theorem 2: as γ → ∞, L_θ → the loss under the hardest dispreferred response y_τ(2).
  auto batch = random_batch(6, 7, 3);
  for (auto o : {prefs::Objective::dpo, prefs::Objective::ipo, prefs::Objective::exo, prefs::Objective::nca}) {
    prefs::LossConfig c;
    c.objective = o;
    c.preference = prefs::Preference::hps_full;
    prefs::LossConfig hard = c;
    hard.preference = prefs::Preference::bt;
    hard.pair_rule = prefs::PairRule::max_max;  // best vs y_τ(2)
    at::Tensor target = prefs::preference_loss(batch, hard, at::Tensor()).per_prompt;
    if (o == prefs::Objective::dpo) {  // eq. (8) keeps the factor N = K − 1 in front of e^{s_τ(2)}
      at::Tensor s = c.beta * (batch.policy_logp - batch.ref_logp);
      at::Tensor top = std::get<1>(batch.reward.topk(2, 1));  // ranks 1 and 2 (rewards are distinct)
      target = -at::log_sigmoid(s.gather(1, top.narrow(1, 0, 1)) - s.gather(1, top.narrow(1, 1, 1)) - std::log(6.0))
                    .squeeze(1);
    }
    std::vector<double> gaps;
    for (double g : {1.0, 100.0, 1e4, 1e6}) {
      c.gamma = g;
      gaps.push_back((prefs::preference_loss(batch, c, at::Tensor()).per_prompt - target).abs().max().item<double>());
    }
    SCOPED_TRACE(describe(c));
    EXPECT_GT(gaps.front(), 1e-4);  // at γ = 1 the other negatives still matter
    EXPECT_LT(gaps.back(), 1e-9);
  }
}

TEST(LossIdentities, SampledHpsAveragesToFullHps) {
  // For pairwise parameterizations HPS-full is Σ q_i ℓ(best, y_i) = E_{y~q} ℓ(best, y): the mean of the
  // single-sample loss over many draws converges to it.
  auto batch = random_batch(4, 6, 4);
  prefs::LossConfig c;
  c.objective = prefs::Objective::ipo;
  c.gamma = 2.0;
  c.preference = prefs::Preference::hps_full;
  at::Tensor full = prefs::preference_loss(batch, c, at::Tensor()).per_prompt;
  c.preference = prefs::Preference::hps;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  at::Tensor sum = at::zeros_like(full), sq = at::zeros_like(full);
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    at::Tensor v = prefs::preference_loss(batch, c, gen).per_prompt;
    sum += v;
    sq += v * v;
  }
  at::Tensor mean = sum / n, se = at::sqrt((sq / n - mean * mean) / n);
  EXPECT_TRUE(((mean - full).abs() <= 5 * se + 1e-9).all().item<bool>()) << mean << full << se;
}

TEST(LossIdentities, RaggedBatchEqualsPerPromptComputation) {
  const auto& fx = loss_fixtures();
  const auto& set = fx["sets"]["ragged"];
  auto batch = batch_from(set);
  at::Tensor draws = to_tensor(set["draws"], at::kDouble);
  for (auto c : cells_with_smoothing()) {
    SCOPED_TRACE(describe(c));
    auto res = prefs::preference_loss(batch, c, draws);
    for (int64_t b = 0; b < batch.valid.size(0); ++b) {
      at::Tensor idx = batch.valid[b].nonzero().squeeze(1);
      auto row = [&](const at::Tensor& x) { return x[b].index_select(0, idx).unsqueeze(0); };
      prefs::PrefBatch one{row(batch.policy_logp), row(batch.ref_logp), row(batch.length), row(batch.reward), {}, {}};
      auto single = prefs::preference_loss(one, c, draws.narrow(0, b, 1));
      EXPECT_NEAR(single.per_prompt[0].item<double>(), res.per_prompt[b].item<double>(), 1e-12) << "prompt " << b;
      const int64_t rej = single.rejected[0].item<int64_t>();  // -1: no preference (all tied)
      EXPECT_EQ(rej < 0 ? -1 : idx[rej].item<int64_t>(), res.rejected[b].item<int64_t>());
      EXPECT_EQ(single.has_pref[0].item<bool>(), res.has_pref[b].item<bool>());
    }
  }
}

}  // namespace
}  // namespace hps::test
