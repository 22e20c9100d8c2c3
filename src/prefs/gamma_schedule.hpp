// The γ schedule of HPS (paper §6: "γ is scheduled to linearly increase from −5 to 5, with updates
// applied at every 20% interval of the training process").
#pragma once

#include <cstdint>
#include <string_view>

namespace hps::prefs {

enum class GammaScheduleKind {
  constant,  // γ = start throughout
  stepwise,  // the paper's: S = round(1/interval) plateaus, evenly spaced from start to end
  linear,    // smooth: γ = start + (end − start)·step/(total − 1)
};

struct GammaSchedule {
  GammaScheduleKind kind = GammaScheduleKind::stepwise;
  double start = -5.0;
  double end = 5.0;
  double interval = 0.2;  // stepwise: fraction of training between updates
};

// γ at optimizer step `step` (0-based) of `total_steps`. Stepwise with the defaults gives
// −5, −2.5, 0, 2.5, 5 on the five 20% stretches of training. Throws ConfigError on a bad schedule.
double gamma_at(const GammaSchedule& s, int64_t step, int64_t total_steps);

std::string_view to_string(GammaScheduleKind k);
GammaScheduleKind parse_gamma_schedule(std::string_view s, std::string_view field = "gamma.schedule");

}  // namespace hps::prefs
