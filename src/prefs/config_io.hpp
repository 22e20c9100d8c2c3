// Reading the loss core's settings from a Config ([loss] and [gamma] tables).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "prefs/gamma_schedule.hpp"
#include "prefs/loss_config.hpp"

namespace hps::prefs {

// Keys of [loss]: preference, objective, beta, pair_rule, n_factor, label_smoothing, robust,
// exo_epsilon, simpo_margin, rdpo_alpha, multi_preferred, multi_lambda, ties. Missing keys keep the
// LossConfig defaults; unknown keys and bad values throw ConfigError.
LossConfig read_loss_config(const Config& cfg, std::string_view table = "loss");
// Keys of [gamma]: schedule (constant | stepwise | linear), start, end, interval.
GammaSchedule read_gamma_schedule(const Config& cfg, std::string_view table = "gamma");

// Keys of [loss] and [gamma] given explicitly in `cfg` that have no effect on c's objective and preference
// model, each as "loss.key: why" (e.g. label smoothing with ipo, n_factor with bt, γ with pl). `hps train`
// refuses them; `hps pipeline`, where one config drives several methods, warns.
std::vector<std::string> ineffective_loss_keys(const Config& cfg, const LossConfig& c, std::string_view loss_table = "loss",
                                               std::string_view gamma_table = "gamma");

}  // namespace hps::prefs
