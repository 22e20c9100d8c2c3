#include "prefs/config_io.hpp"

#include <string>

namespace hps::prefs {

LossConfig read_loss_config(const Config& cfg, std::string_view table) {
  const std::string t(table);
  cfg.check_known(t, {"preference", "objective", "beta", "pair_rule", "n_factor", "label_smoothing", "robust",
                      "exo_epsilon", "simpo_margin", "rdpo_alpha", "multi_preferred", "multi_lambda"});
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

}  // namespace hps::prefs
