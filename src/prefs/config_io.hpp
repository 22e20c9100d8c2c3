// Reading the loss core's settings from a Config ([loss] and [gamma] tables).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "core/config_schema.hpp"
#include "prefs/gamma_schedule.hpp"
#include "prefs/loss_config.hpp"

namespace hps::prefs {

// The keys of [loss] (preference, objective, beta, pair_rule, n_factor, label_smoothing, robust, exo_epsilon,
// simpo_margin, rdpo_alpha, multi_preferred, multi_lambda, ties) and of [gamma] (schedule: constant |
// stepwise | linear, start, end, interval), each declared once.
const TableSchema<LossConfig>& loss_schema();
const TableSchema<GammaSchedule>& gamma_schema();

// [loss] / [gamma] (under another name with `table`): missing keys keep base's values; unknown keys, bad
// values and invalid combinations throw ConfigError.
LossConfig read_loss_config(const Config& cfg, std::string_view table = "loss", const LossConfig& base = {});
GammaSchedule read_gamma_schedule(const Config& cfg, std::string_view table = "gamma", const GammaSchedule& base = {});

// Keys of [loss] and [gamma] given explicitly in `cfg` that have no effect on c's objective and preference
// model, each as "loss.key: why" (e.g. label smoothing with ipo, n_factor with bt, γ with pl). `hps train`
// refuses them; `hps pipeline`, where one config drives several methods, warns.
std::vector<std::string> ineffective_loss_keys(const Config& cfg, const LossConfig& c, std::string_view loss_table = "loss",
                                               std::string_view gamma_table = "gamma");

}  // namespace hps::prefs
