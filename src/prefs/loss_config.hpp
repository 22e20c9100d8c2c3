// Configuration of the preference-loss core: which preference model, which parameterization, and
// their hyper-parameters. Plain struct with the paper's defaults (§6: β = 0.1; γ scheduled −5 → 5).
// Every equation is written out in docs/losses.md.
#pragma once

#include <string>
#include <string_view>

namespace hps::prefs {

// Preference model: how the K ranked responses of a prompt enter the loss (paper §3–4).
enum class Preference {
  bt,        // Bradley-Terry: one pair per prompt, chosen by PairRule (paper §3, App. A.1)
  pl,        // Plackett-Luce over the whole ranking, eq. (4)-(5)
  hps,       // HPS, single-sample: one dispreferred y ~ q per prompt (§4.2 "flexible sampling")
  hps_full,  // HPS, all dispreferred weighted by q, eq. (8)-(10)
};

// Implicit-reward parameterization (paper §6 baselines, plus SimPO, R-DPO and cDPO/robust DPO).
enum class Objective { dpo, ipo, exo, sppo, nca, simpo, rdpo };

// BT pair rule: which two of the K responses form the pair.
enum class PairRule {
  max_min,     // best vs worst (paper: "BT selects the most and least preferred")
  max_random,  // best vs a uniformly random other response
  max_max,     // best vs second best (the hardest negative)
  random,      // two distinct uniformly random responses, ordered by reward
};

// The factor N = K − 1 of eq. (8). `n` keeps it (the paper's equation); `one` drops it, which is what
// the authors' released code trains with (TRL's sigmoid loss on the sampled pair).
enum class NFactor { n, one };

// Responses with equal reward. `exclude` (default): ties carry no preference — a response tied with a
// preferred one is never its negative, tied preferred responses share the anchor (uniform weights), PL uses
// Efron's tie correction, and a prompt whose responses all tie trains nothing (counted, see LossResult).
// `by_slot`: the earlier behaviour, kept to compare with old runs — ties broken by slot order (lower first).
enum class Ties { exclude, by_slot };

struct LossConfig {
  Preference preference = Preference::hps;
  Objective objective = Objective::dpo;
  double beta = 0.1;               // β of eq. (3) (for IPO/SPPO: the regularization τ, as in TRL)
  double gamma = 0.0;              // γ of eq. (9), the current value (see GammaSchedule)
  PairRule pair_rule = PairRule::max_min;
  NFactor n_factor = NFactor::n;
  double label_smoothing = 0.0;    // ε of cDPO (DPO family: dpo, rdpo, simpo); 0 = plain DPO
  bool robust = false;             // robust DPO (Chowdhury et al. 2024) instead of cDPO smoothing
  double exo_epsilon = 1e-3;       // ε of EXO's label distribution (TRL's exo_pair default)
  double simpo_margin = 0.5;       // SimPO target reward margin γ_SimPO (TRL's simpo_gamma default)
  double rdpo_alpha = 0.01;        // R-DPO length penalty α (the paper's RM_R-DPO uses 0.01)
  bool multi_preferred = false;    // Appendix E: L1 + λ·L2 with the two best responses preferred
  double multi_lambda = 1.0;       // λ of Appendix E
  Ties ties = Ties::exclude;
};

// Throws ConfigError naming the field when a value is out of its domain.
void validate(const LossConfig& config);

// Names as they appear in config files and on the command line ("hps_full", "max_min", ...).
std::string_view to_string(Preference v);
std::string_view to_string(Objective v);
std::string_view to_string(PairRule v);
std::string_view to_string(NFactor v);
std::string_view to_string(Ties v);
// Parse a name; throw ConfigError listing the accepted names. `field` names the key for the message.
Preference parse_preference(std::string_view s, std::string_view field = "preference");
Objective parse_objective(std::string_view s, std::string_view field = "objective");
PairRule parse_pair_rule(std::string_view s, std::string_view field = "pair_rule");
NFactor parse_n_factor(std::string_view s, std::string_view field = "n_factor");
Ties parse_ties(std::string_view s, std::string_view field = "ties");

}  // namespace hps::prefs
