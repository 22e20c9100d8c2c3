#include "prefs/config_io.hpp"

#include <string>
#include <tuple>

namespace hps::prefs {

LossConfig read_loss_config(const Config& cfg, std::string_view table) {
  const std::string t(table);
  cfg.check_known(t, {"preference", "objective", "beta", "pair_rule", "n_factor", "label_smoothing", "robust",
                      "exo_epsilon", "simpo_margin", "rdpo_alpha", "multi_preferred", "multi_lambda", "ties"});
  auto key = [&](const char* k) { return t + "." + k; };
  LossConfig c;
  c.preference = parse_preference(cfg.get_string(key("preference"), std::string(to_string(c.preference))), key("preference"));
  c.objective = parse_objective(cfg.get_string(key("objective"), std::string(to_string(c.objective))), key("objective"));
  c.pair_rule = parse_pair_rule(cfg.get_string(key("pair_rule"), std::string(to_string(c.pair_rule))), key("pair_rule"));
  c.n_factor = parse_n_factor(cfg.get_string(key("n_factor"), std::string(to_string(c.n_factor))), key("n_factor"));
  c.beta = cfg.get_double(key("beta"), c.beta);
  c.label_smoothing = cfg.get_double(key("label_smoothing"), c.label_smoothing);
  c.robust = cfg.get_bool(key("robust"), c.robust);
  c.exo_epsilon = cfg.get_double(key("exo_epsilon"), c.exo_epsilon);
  c.simpo_margin = cfg.get_double(key("simpo_margin"), c.simpo_margin);
  c.rdpo_alpha = cfg.get_double(key("rdpo_alpha"), c.rdpo_alpha);
  c.multi_preferred = cfg.get_bool(key("multi_preferred"), c.multi_preferred);
  c.multi_lambda = cfg.get_double(key("multi_lambda"), c.multi_lambda);
  c.ties = parse_ties(cfg.get_string(key("ties"), std::string(to_string(c.ties))), key("ties"));
  validate(c);
  return c;
}

GammaSchedule read_gamma_schedule(const Config& cfg, std::string_view table) {
  const std::string t(table);
  cfg.check_known(t, {"schedule", "start", "end", "interval"});
  GammaSchedule s;
  s.kind = parse_gamma_schedule(cfg.get_string(t + ".schedule", std::string(to_string(s.kind))), t + ".schedule");
  s.start = cfg.get_double(t + ".start", s.start);
  s.end = cfg.get_double(t + ".end", s.end);
  s.interval = cfg.get_double(t + ".interval", s.interval);
  gamma_at(s, 0, 1);  // validates
  return s;
}

std::vector<std::string> ineffective_loss_keys(const Config& cfg, const LossConfig& c, std::string_view loss_table,
                                               std::string_view gamma_table) {
  const std::string obj(to_string(c.objective)), pref(to_string(c.preference));
  const bool dpo_link = c.objective == Objective::dpo || c.objective == Objective::rdpo || c.objective == Objective::simpo;
  const bool hps = c.preference == Preference::hps || c.preference == Preference::hps_full;
  // (key, has an effect, why not)
  const std::vector<std::tuple<std::string, bool, std::string>> rules{
      {"label_smoothing", dpo_link, "objective '" + obj + "' has no sigmoid link to smooth (cDPO applies to dpo, rdpo, simpo)"},
      {"robust", dpo_link && c.label_smoothing > 0,
       dpo_link ? "robust DPO changes nothing without label_smoothing > 0"
                : "objective '" + obj + "' has no sigmoid link (robust DPO applies to dpo, rdpo, simpo)"},
      {"n_factor", hps && c.objective == Objective::dpo,
       hps ? "the log N term exists only in HPS's softmax (dpo) form, not with '" + obj + "'"
           : "N of eq. (8) belongs to HPS; preference is '" + pref + "'"},
      {"pair_rule", c.preference == Preference::bt, "pair rules choose BT's pair; preference is '" + pref + "'"},
      {"exo_epsilon", c.objective == Objective::exo, "only objective 'exo' reads it; objective is '" + obj + "'"},
      {"simpo_margin", c.objective == Objective::simpo, "only objective 'simpo' reads it; objective is '" + obj + "'"},
      {"rdpo_alpha", c.objective == Objective::rdpo, "only objective 'rdpo' reads it; objective is '" + obj + "'"},
      {"multi_lambda", c.multi_preferred, "λ weighs Appendix E's L2, which needs multi_preferred = true"},
  };
  std::vector<std::string> out;
  const std::string lt(loss_table), gt(gamma_table);
  for (const auto& [key, effective, why] : rules)
    if (!effective && cfg.has(lt + "." + key)) out.push_back(lt + "." + key + ": " + why);
  if (!hps)
    for (const char* key : {"schedule", "start", "end", "interval"})
      if (cfg.has(gt + "." + key))
        out.push_back(gt + "." + key + ": γ weighs HPS's negatives (eq. 9); preference is '" + pref + "'");
  return out;
}

}  // namespace hps::prefs
