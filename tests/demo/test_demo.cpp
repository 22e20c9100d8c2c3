// The embedded demo: a quick profile completes, and its outcome agrees with Theorem 3 — with DPO,
// HPS leaves a larger margin between the best response and the hardest negative than PL.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "core/error.hpp"
#include "demo/loss_demo.hpp"

namespace hps::demo {
namespace {

TEST(LossDemo, HpsWidensTheHardestMarginOverPl) {
  DemoConfig c;
  c.prompts = 16;
  c.steps = 150;
  auto rows = run_loss_demo(c, {prefs::Objective::dpo},
                            {prefs::Preference::bt, prefs::Preference::pl, prefs::Preference::hps,
                             prefs::Preference::hps_full});
  ASSERT_EQ(rows.size(), 4u);
  for (const auto& r : rows) {
    EXPECT_TRUE(std::isfinite(r.margin_hardest)) << r.preference;
    EXPECT_GT(r.p_best, 0.0);
    EXPECT_LE(r.p_best, 1.0);
  }
  EXPECT_EQ(rows[0].forwarded, 2);
  EXPECT_EQ(rows[1].forwarded, c.responses);
  EXPECT_GT(rows[2].margin_hardest, rows[1].margin_hardest);
  EXPECT_GT(rows[3].margin_hardest, rows[1].margin_hardest);
  std::ostringstream os;
  print_demo_table(rows, os);
  EXPECT_NE(os.str().find("hps_full"), std::string::npos);
}

TEST(LossDemo, ConfigValidation) {
  Config cfg = Config::from_string("[demo]\nresponses = 2\n", "d.toml");
  EXPECT_THROW(read_demo_config(cfg), ConfigError);
}

}  // namespace
}  // namespace hps::demo
