#include "prefs/config_io.hpp"

#include <string>
#include <tuple>

namespace hps::prefs {

namespace {
// An enum field's parser for TableSchema::name: (text, full key) → value.
template <auto Parse>
auto by_name() {
  return [](const std::string& s, const std::string& key) { return Parse(s, key); };
}
}  // namespace

const TableSchema<LossConfig>& loss_schema() {
  static const TableSchema<LossConfig> s =
      TableSchema<LossConfig>("loss")
          .name("preference", &LossConfig::preference, by_name<parse_preference>())
          .name("objective", &LossConfig::objective, by_name<parse_objective>())
          .add("beta", &LossConfig::beta)
          .name("pair_rule", &LossConfig::pair_rule, by_name<parse_pair_rule>())
          .name("n_factor", &LossConfig::n_factor, by_name<parse_n_factor>())
          .add("label_smoothing", &LossConfig::label_smoothing)
          .add("robust", &LossConfig::robust)
          .add("exo_epsilon", &LossConfig::exo_epsilon)
          .add("simpo_margin", &LossConfig::simpo_margin)
          .add("rdpo_alpha", &LossConfig::rdpo_alpha)
          .add("multi_preferred", &LossConfig::multi_preferred)
          .add("multi_lambda", &LossConfig::multi_lambda)
          .name("ties", &LossConfig::ties, by_name<parse_ties>());
  return s;
}

const TableSchema<GammaSchedule>& gamma_schema() {
  static const TableSchema<GammaSchedule> s =
      TableSchema<GammaSchedule>("gamma")
          .name("schedule", &GammaSchedule::kind, by_name<parse_gamma_schedule>())
          .add("start", &GammaSchedule::start)
          .add("end", &GammaSchedule::end)
          .add("interval", &GammaSchedule::interval);
  return s;
}

LossConfig read_loss_config(const Config& cfg, std::string_view table, const LossConfig& base) {
  LossConfig c = base;
  loss_schema().read(cfg, std::string(table), c);
  validate(c);
  return c;
}

GammaSchedule read_gamma_schedule(const Config& cfg, std::string_view table, const GammaSchedule& base) {
  GammaSchedule s = base;
  gamma_schema().read(cfg, std::string(table), s);
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
    for (const auto key : gamma_schema().keys())
      if (cfg.has(gt + "." + std::string(key)))
        out.push_back(gt + "." + std::string(key) + ": γ weighs HPS's negatives (eq. 9); preference is '" + pref + "'");
  return out;
}

}  // namespace hps::prefs
