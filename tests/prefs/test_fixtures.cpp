// Every cell of the loss grid against the independent Python reference (tools/fixtures/
// make_loss_fixtures.py, written from the cited papers): per-prompt losses to 1e-6 in float64, the same
// reported pair, and the same prompts without a preference (all responses tied).
#include "prefs/helpers.hpp"

namespace hps::test {
namespace {

TEST(LossFixtures, EveryCellMatchesReference) {
  for_each_fixture_case([](const nlohmann::json& set, const prefs::LossConfig& c, const nlohmann::json& cs) {
    at::Tensor draws = to_tensor(set["draws"], at::kDouble);
    auto res = prefs::preference_loss(batch_from(set), c, draws);
    ASSERT_EQ(res.per_prompt.scalar_type(), at::kDouble);
    const auto& expect = cs["per_prompt"];
    ASSERT_EQ(res.per_prompt.size(0), static_cast<int64_t>(expect.size()));
    double sum = 0;
    int64_t with_pref = 0;
    for (size_t b = 0; b < expect.size(); ++b) {
      const double want = expect[b].get<double>(), got = res.per_prompt[b].item<double>();
      EXPECT_NEAR(got, want, 1e-6 * std::max(1.0, std::abs(want))) << "prompt " << b;
      EXPECT_EQ(res.chosen[b].item<int64_t>(), cs["chosen"][b].get<int64_t>()) << "prompt " << b;
      EXPECT_EQ(res.rejected[b].item<int64_t>(), cs["rejected"][b].get<int64_t>()) << "prompt " << b;
      const bool pref = cs["has_pref"][b].get<bool>();
      EXPECT_EQ(res.has_pref[b].item<bool>(), pref) << "prompt " << b;
      sum += pref ? want : 0.0;
      with_pref += pref ? 1 : 0;
    }
    EXPECT_EQ(res.no_preference, static_cast<int64_t>(expect.size()) - with_pref);
    const double mean = sum / static_cast<double>(std::max<int64_t>(with_pref, 1));
    EXPECT_NEAR(res.loss.item<double>(), mean, 1e-6 * std::max(1.0, std::abs(mean)));
  });
}

TEST(LossFixtures, FloatInputMatchesLooser) {
  // float32 log-probs run the math in float32: same values to single precision.
  for_each_fixture_case([](const nlohmann::json& set, const prefs::LossConfig& c, const nlohmann::json& cs) {
    auto res = prefs::preference_loss(batch_from(set, at::kFloat), c, to_tensor(set["draws"], at::kDouble));
    ASSERT_EQ(res.per_prompt.scalar_type(), at::kFloat);
    for (size_t b = 0; b < cs["per_prompt"].size(); ++b) {
      const double want = cs["per_prompt"][b].get<double>();
      EXPECT_NEAR(res.per_prompt[b].item<double>(), want, 2e-3 * std::max(1.0, std::abs(want)));
    }
  });
}

}  // namespace
}  // namespace hps::test
