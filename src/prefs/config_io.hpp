// Reading the loss core's settings from a Config ([loss] and [gamma] tables).
#pragma once

#include <string_view>

#include "core/config.hpp"
#include "prefs/gamma_schedule.hpp"
#include "prefs/loss_config.hpp"

namespace hps::prefs {

// Keys of [loss]: preference, objective, beta, pair_rule, n_factor, label_smoothing, robust,
// exo_epsilon, simpo_margin, rdpo_alpha, multi_preferred, multi_lambda. Missing keys keep the
// LossConfig defaults; unknown keys and bad values throw ConfigError.
LossConfig read_loss_config(const Config& cfg, std::string_view table = "loss");
// Keys of [gamma]: schedule (constant | stepwise | linear), start, end, interval.
GammaSchedule read_gamma_schedule(const Config& cfg, std::string_view table = "gamma");

}  // namespace hps::prefs
