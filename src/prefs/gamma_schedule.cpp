#include "prefs/gamma_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/enum_names.hpp"
#include "core/error.hpp"

namespace hps::prefs {

double gamma_at(const GammaSchedule& s, int64_t step, int64_t total_steps) {
  if (!std::isfinite(s.start) || !std::isfinite(s.end))
    throw ConfigError("'gamma.start' and 'gamma.end' must be finite");
  if (total_steps < 1) throw ConfigError("gamma schedule: total_steps must be >= 1, got " + std::to_string(total_steps));
  if (step < 0 || step >= total_steps)
    throw ConfigError("gamma schedule: step " + std::to_string(step) + " outside [0, " + std::to_string(total_steps) + ")");
  switch (s.kind) {
    case GammaScheduleKind::constant: return s.start;
    case GammaScheduleKind::linear: {
      if (total_steps == 1) return s.end;
      return s.start + (s.end - s.start) * static_cast<double>(step) / static_cast<double>(total_steps - 1);
    }
    case GammaScheduleKind::stepwise: {
      if (!(s.interval > 0 && s.interval <= 1))
        throw ConfigError("'gamma.interval' must be in (0, 1], got " + std::to_string(s.interval));
      const int64_t stages = std::max<int64_t>(1, std::llround(1.0 / s.interval));
      if (stages == 1) return s.end;
      const double progress = static_cast<double>(step) / static_cast<double>(total_steps);
      const int64_t stage = std::min<int64_t>(stages - 1, static_cast<int64_t>(std::floor(progress * stages + 1e-12)));
      return s.start + (s.end - s.start) * static_cast<double>(stage) / static_cast<double>(stages - 1);
    }
  }
  return s.start;
}

namespace {
constexpr EnumNames<GammaScheduleKind, 3> kSchedules{{{"constant", GammaScheduleKind::constant},
                                                     {"stepwise", GammaScheduleKind::stepwise},
                                                     {"linear", GammaScheduleKind::linear}}};
}  // namespace

std::string_view to_string(GammaScheduleKind k) { return enum_name(k, kSchedules); }
GammaScheduleKind parse_gamma_schedule(std::string_view s, std::string_view field) { return parse_enum(s, field, kSchedules); }

}  // namespace hps::prefs
