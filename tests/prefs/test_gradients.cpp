// Autograd gradients of every fixture cell against central finite differences in float64, with
// respect to both policy and reference log-probs (the reference enters every loss but SimPO's).
#include "prefs/helpers.hpp"

namespace hps::test {
namespace {

double loss_at(const prefs::PrefBatch& b, const prefs::LossConfig& c, const at::Tensor& draws) {
  return prefs::preference_loss(b, c, draws).loss.item<double>();
}

void check_gradients(const prefs::PrefBatch& base, const prefs::LossConfig& c, const at::Tensor& draws) {
  prefs::PrefBatch b = base;
  b.policy_logp = base.policy_logp.clone().set_requires_grad(true);
  b.ref_logp = base.ref_logp.clone().set_requires_grad(true);
  auto res = prefs::preference_loss(b, c, draws);
  res.loss.backward();
  at::Tensor g_pol = b.policy_logp.grad(), g_ref = b.ref_logp.grad();
  ASSERT_TRUE(g_pol.defined());
  ASSERT_TRUE(at::isfinite(g_pol).all().item<bool>());
  const double h = 1e-5;
  const int64_t B = base.valid.size(0), K = base.valid.size(1);
  for (int which = 0; which < 2; ++which) {
    at::Tensor grad = which == 0 ? g_pol : g_ref;
    for (int64_t i = 0; i < B; ++i) {
      for (int64_t k = 0; k < K; ++k) {
        prefs::PrefBatch p = base, m = base;
        at::Tensor& xp = which == 0 ? p.policy_logp : p.ref_logp;
        at::Tensor& xm = which == 0 ? m.policy_logp : m.ref_logp;
        xp = xp.clone();
        xm = xm.clone();
        xp[i][k] += h;
        xm[i][k] -= h;
        const double fd = (loss_at(p, c, draws) - loss_at(m, c, draws)) / (2 * h);
        const double ad = grad.defined() ? grad[i][k].item<double>() : 0.0;
        EXPECT_NEAR(ad, fd, 1e-6 + 1e-5 * std::abs(fd))
            << (which == 0 ? "policy_logp" : "ref_logp") << " [" << i << "," << k << "]";
      }
    }
  }
}

TEST(LossGradients, EveryFixtureCellMatchesFiniteDifferences) {
  for_each_fixture_case([](const nlohmann::json& set, const prefs::LossConfig& c, const nlohmann::json&) {
    check_gradients(batch_from(set), c, to_tensor(set["draws"], at::kDouble));
  });
}

}  // namespace
}  // namespace hps::test
