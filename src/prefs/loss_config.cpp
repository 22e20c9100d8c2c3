#include "prefs/loss_config.hpp"

#include <array>
#include <cmath>
#include <utility>

#include "core/enum_names.hpp"
#include "core/error.hpp"

namespace hps::prefs {
namespace {

constexpr EnumNames<Preference, 4> kPreferences{{
    {"bt", Preference::bt}, {"pl", Preference::pl}, {"hps", Preference::hps}, {"hps_full", Preference::hps_full}}};
constexpr EnumNames<Objective, 7> kObjectives{{{"dpo", Objective::dpo},
                                                                             {"ipo", Objective::ipo},
                                                                             {"exo", Objective::exo},
                                                                             {"sppo", Objective::sppo},
                                                                             {"nca", Objective::nca},
                                                                             {"simpo", Objective::simpo},
                                                                             {"rdpo", Objective::rdpo}}};
constexpr EnumNames<PairRule, 4> kPairRules{{{"max_min", PairRule::max_min},
                                                                          {"max_random", PairRule::max_random},
                                                                          {"max_max", PairRule::max_max},
                                                                          {"random", PairRule::random}}};
constexpr EnumNames<NFactor, 2> kNFactors{{{"n", NFactor::n}, {"one", NFactor::one}}};
constexpr EnumNames<Ties, 2> kTies{{{"exclude", Ties::exclude}, {"by_slot", Ties::by_slot}}};

void require(bool ok, const char* field, const std::string& rule, double actual) {
  if (!ok) throw ConfigError(std::string("'") + field + "' must be " + rule + ", got " + std::to_string(actual));
}

}  // namespace

std::string_view to_string(Preference v) { return enum_name(v, kPreferences); }
std::string_view to_string(Objective v) { return enum_name(v, kObjectives); }
std::string_view to_string(PairRule v) { return enum_name(v, kPairRules); }
std::string_view to_string(NFactor v) { return enum_name(v, kNFactors); }
std::string_view to_string(Ties v) { return enum_name(v, kTies); }
Preference parse_preference(std::string_view s, std::string_view f) { return parse_enum(s, f, kPreferences); }
Objective parse_objective(std::string_view s, std::string_view f) { return parse_enum(s, f, kObjectives); }
PairRule parse_pair_rule(std::string_view s, std::string_view f) { return parse_enum(s, f, kPairRules); }
NFactor parse_n_factor(std::string_view s, std::string_view f) { return parse_enum(s, f, kNFactors); }
Ties parse_ties(std::string_view s, std::string_view f) { return parse_enum(s, f, kTies); }

void validate(const LossConfig& c) {
  require(std::isfinite(c.beta) && c.beta > 0, "beta", "finite and > 0", c.beta);
  require(std::isfinite(c.gamma), "gamma", "finite", c.gamma);
  require(c.label_smoothing >= 0 && c.label_smoothing < 0.5, "label_smoothing", "in [0, 0.5)", c.label_smoothing);
  require(c.exo_epsilon > 0 && c.exo_epsilon < 1, "exo_epsilon", "in (0, 1)", c.exo_epsilon);
  require(std::isfinite(c.simpo_margin), "simpo_margin", "finite", c.simpo_margin);
  require(std::isfinite(c.rdpo_alpha), "rdpo_alpha", "finite", c.rdpo_alpha);
  require(std::isfinite(c.multi_lambda) && c.multi_lambda >= 0, "multi_lambda", "finite and >= 0", c.multi_lambda);
  if (c.multi_preferred && c.preference != Preference::hps && c.preference != Preference::hps_full)
    throw ConfigError("'multi_preferred' (Appendix E) needs preference 'hps' or 'hps_full', got '" +
                      std::string(to_string(c.preference)) + "'");
}

}  // namespace hps::prefs
