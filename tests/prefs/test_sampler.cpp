// The hard-negative sampler: empirical frequencies match q of eq. (9) (chi-square), seeds replay.
#include <ATen/CPUGeneratorImpl.h>

#include "prefs/helpers.hpp"

namespace hps::test {
namespace {

TEST(HardNegativeSampler, FrequenciesMatchQChiSquare) {
  // One prompt, K = 7 (slot 4 invalid), γ = 1.5; 20 000 draws from a fixed seed.
  auto opt = at::TensorOptions().dtype(at::kDouble);
  at::Tensor reward = at::tensor({0.3, 2.0, -1.0, 0.9, 5.0, 0.8, -0.2}, opt).unsqueeze(0);
  at::Tensor valid = at::tensor({1, 1, 1, 1, 0, 1, 1}, opt).to(at::kBool).unsqueeze(0);
  prefs::LossConfig full;
  full.preference = prefs::Preference::hps_full;
  full.gamma = 1.5;
  at::Tensor q = prefs::select_slots(reward, valid, full, {}).terms[0].negative[0];  // rank order
  EXPECT_NEAR(q.sum().item<double>(), 1.0, 1e-12);
  EXPECT_EQ(q[0].item<double>(), 0.0);  // never the preferred response
  EXPECT_EQ(q[6].item<double>(), 0.0);  // never an invalid slot

  // The single-sample selection draws its negative from the same q.
  const int64_t n = 20000;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(123);
  prefs::LossConfig one = full;
  one.preference = prefs::Preference::hps;
  auto sel = prefs::select_slots(reward.expand({n, 7}), valid.expand({n, 7}), one, prefs::draw_uniforms(n, gen));
  at::Tensor idx = sel.terms[0].negative.argmax(1);
  at::Tensor counts = at::bincount(idx, {}, 7).to(at::kDouble);
  EXPECT_EQ(counts[0].item<double>(), 0.0);
  EXPECT_EQ(counts[6].item<double>(), 0.0);
  double chi2 = 0;
  for (int j = 1; j <= 5; ++j) {
    const double e = n * q[j].item<double>();
    chi2 += std::pow(counts[j].item<double>() - e, 2) / e;
  }
  EXPECT_LT(chi2, 18.47) << "chi-square with 4 degrees of freedom, p = 0.001";  // 5 categories
}

TEST(HardNegativeSampler, SameSeedSameDrawsDifferentSeedDifferent) {
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(7), g2 = at::make_generator<at::CPUGeneratorImpl>(7),
       g3 = at::make_generator<at::CPUGeneratorImpl>(8);
  at::Tensor a = prefs::draw_uniforms(64, g1), b = prefs::draw_uniforms(64, g2), c = prefs::draw_uniforms(64, g3);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, c));
  EXPECT_TRUE(((a >= 0) & (a < 1)).all().item<bool>());
}

TEST(HardNegativeSampler, UnderflowedWeightsAreNeverSampled) {
  // With a huge γ every q but the top negative underflows to 0; any draw must land on it.
  auto opt = at::TensorOptions().dtype(at::kDouble);
  at::Tensor reward = at::tensor({3.0, 1.0, 0.0, -1.0}, opt).unsqueeze(0);
  prefs::LossConfig c;
  c.gamma = 1e6;
  for (double u : {0.0, 0.5, 0.999999999999}) {
    auto sel = prefs::select_slots(reward, {}, c, at::tensor({u, 0.0}, opt).view({1, 2}));
    EXPECT_EQ(sel.terms[0].negative[0].argmax().item<int64_t>(), 1) << u;
  }
}

TEST(HardNegativeSampler, AppendixEDistributionExcludesTheTwoBest) {
  auto opt = at::TensorOptions().dtype(at::kDouble);
  at::Tensor reward = at::tensor({1.0, 4.0, 2.0, 3.0}, opt).unsqueeze(0);
  prefs::LossConfig c;
  c.preference = prefs::Preference::hps_full;
  c.multi_preferred = true;
  c.gamma = 1.0;
  at::Tensor q2 = prefs::select_slots(reward, {}, c, {}).terms[1].negative[0];
  EXPECT_EQ(q2[0].item<double>(), 0.0);
  EXPECT_EQ(q2[1].item<double>(), 0.0);
  EXPECT_NEAR(q2[2].item<double>(), std::exp(2.0) / (std::exp(2.0) + std::exp(1.0)), 1e-12);
}

}  // namespace
}  // namespace hps::test
