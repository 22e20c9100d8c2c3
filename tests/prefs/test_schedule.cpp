// The γ schedule (paper §6) and the [loss] / [gamma] config tables.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "prefs/config_io.hpp"
#include "prefs/gamma_schedule.hpp"

namespace hps::prefs {
namespace {

TEST(GammaSchedule, PaperStepwiseFiveStretches) {
  GammaSchedule s;  // stepwise −5 → 5 every 20%
  const int64_t T = 100;
  EXPECT_EQ(gamma_at(s, 0, T), -5.0);
  EXPECT_EQ(gamma_at(s, 19, T), -5.0);
  EXPECT_EQ(gamma_at(s, 20, T), -2.5);
  EXPECT_EQ(gamma_at(s, 40, T), 0.0);
  EXPECT_EQ(gamma_at(s, 60, T), 2.5);
  EXPECT_EQ(gamma_at(s, 79, T), 2.5);
  EXPECT_EQ(gamma_at(s, 80, T), 5.0);
  EXPECT_EQ(gamma_at(s, 99, T), 5.0);
  EXPECT_EQ(gamma_at(s, 2, 3), 2.5);  // short runs still move: stages 0, 1(.66 → 3), …
}

TEST(GammaSchedule, LinearAndConstant) {
  GammaSchedule s{GammaScheduleKind::linear, -5, 5, 0.2};
  EXPECT_EQ(gamma_at(s, 0, 11), -5.0);
  EXPECT_NEAR(gamma_at(s, 5, 11), 0.0, 1e-12);
  EXPECT_EQ(gamma_at(s, 10, 11), 5.0);
  GammaSchedule k{GammaScheduleKind::constant, 1.7, 5, 0.2};
  EXPECT_EQ(gamma_at(k, 3, 10), 1.7);
}

TEST(GammaSchedule, BadValuesAreConfigErrors) {
  GammaSchedule s;
  EXPECT_THROW(gamma_at(s, 10, 10), ConfigError);
  EXPECT_THROW(gamma_at(s, 0, 0), ConfigError);
  s.interval = 0;
  EXPECT_THROW(gamma_at(s, 0, 10), ConfigError);
  EXPECT_THROW(parse_gamma_schedule("cosine"), ConfigError);
}

TEST(LossConfigToml, ReadsEveryKeyAndRejectsTypos) {
  auto cfg = Config::from_string(R"(
[loss]
preference = "bt"
objective = "rdpo"
beta = 0.25
pair_rule = "max_random"
n_factor = "one"
label_smoothing = 0.1
robust = true
exo_epsilon = 0.01
simpo_margin = 1
rdpo_alpha = 0.02
multi_preferred = false
multi_lambda = 0.5
[gamma]
schedule = "linear"
start = -1
end = 3.5
)",
                                 "test.toml");
  LossConfig c = read_loss_config(cfg);
  EXPECT_EQ(c.preference, Preference::bt);
  EXPECT_EQ(c.objective, Objective::rdpo);
  EXPECT_EQ(c.beta, 0.25);
  EXPECT_EQ(c.pair_rule, PairRule::max_random);
  EXPECT_EQ(c.n_factor, NFactor::one);
  EXPECT_EQ(c.label_smoothing, 0.1);
  EXPECT_TRUE(c.robust);
  EXPECT_EQ(c.exo_epsilon, 0.01);
  EXPECT_EQ(c.simpo_margin, 1.0);  // an integer where a float is expected is fine
  EXPECT_EQ(c.rdpo_alpha, 0.02);
  EXPECT_EQ(c.multi_lambda, 0.5);
  GammaSchedule g = read_gamma_schedule(cfg);
  EXPECT_EQ(g.kind, GammaScheduleKind::linear);
  EXPECT_EQ(g.start, -1.0);
  EXPECT_EQ(g.end, 3.5);

  auto typo = Config::from_string("[loss]\nbetta = 0.1\n", "typo.toml");
  try {
    read_loss_config(typo);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown key 'loss.betta' in typo.toml"), std::string::npos) << e.what();
  }
  auto bad = Config::from_string("[loss]\nbeta = \"high\"\n", "bad.toml");
  try {
    read_loss_config(bad);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'loss.beta' in bad.toml must be a number, got string"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace hps::prefs
