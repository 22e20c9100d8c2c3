#include "eval/results.hpp"

#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace hps::eval {

using nlohmann::json;

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RewardStats, mean, top1, prompts, samples)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(OracleSummary, mean, top1, harmful_rate, exact_rate, samples)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BaselineReward, mean, top1)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Bleu, nltk_sentence_mean, sacrebleu_corpus, pairs)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Margins, rm_dpo, rm_rdpo, accuracy, pairs)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Kl, mean, prompts)

// The win rate as one flat object: against, win, tie, lose, win_ci95 [lo, hi], prompts, tie_band.
void to_json(json& j, const WinRateResult& w) {
  j = {{"against", w.against}, {"win", w.rate.win}, {"tie", w.rate.tie}, {"lose", w.rate.lose},
       {"win_ci95", {w.rate.win_lo, w.rate.win_hi}}, {"prompts", w.rate.prompts}, {"tie_band", w.tie_band}};
}
void from_json(const json& j, WinRateResult& w) {
  w.against = j.at("against").get<std::string>();
  w.rate.win = j.at("win").get<double>(), w.rate.tie = j.at("tie").get<double>(), w.rate.lose = j.at("lose").get<double>();
  w.rate.win_lo = j.at("win_ci95").at(0).get<double>(), w.rate.win_hi = j.at("win_ci95").at(1).get<double>();
  w.rate.prompts = j.at("prompts").get<int64_t>();
  w.tie_band = j.value("tie_band", 0.0);
}

void to_json(json& j, const TrainingCost& c) {
  j = {{"seconds", c.seconds}};
  if (c.responses_per_prompt) j["responses_per_prompt"] = *c.responses_per_prompt;
}
void from_json(const json& j, TrainingCost& c) {
  c.seconds = j.value("seconds", 0.0);
  if (j.contains("responses_per_prompt")) c.responses_per_prompt = j.at("responses_per_prompt").get<double>();
}

namespace {

// The optional parts under their keys, named once for both directions. R: EvalResults or const EvalResults.
template <typename R, typename F>
void for_each_part(R& r, F&& f) {
  f("oracle", r.oracle), f("win_rate", r.win_rate), f("baseline_reward", r.baseline_reward), f("bleu", r.bleu);
  f("margins", r.margins), f("margins_hardest", r.margins_hardest), f("kl_winning", r.kl_winning);
  f("training", r.training);
}

}  // namespace

json to_json(const EvalResults& r) {
  json j = {{"name", r.name}, {"reward", r.reward}, {"reward_samples", r.reward_samples}};
  for_each_part(r, [&](const char* key, const auto& part) {
    if (part) j[key] = *part;
  });
  if (r.oracle) j["oracle_samples"] = r.oracle_samples;
  return j;
}

EvalResults results_from_json(const json& j, const std::string& source) {
  try {
    EvalResults r;
    r.name = j.value("name", std::string());
    r.reward = j.at("reward").get<RewardStats>();
    r.reward_samples = j.value("reward_samples", std::vector<double>{});
    r.oracle_samples = j.value("oracle_samples", std::vector<double>{});
    for_each_part(r, [&](const char* key, auto& part) {
      if (j.contains(key)) part = j.at(key).get<typename std::remove_cvref_t<decltype(part)>::value_type>();
    });
    return r;
  } catch (const json::exception& e) {
    throw InputError(source + ": not the results of hps eval: " + e.what());
  }
}

EvalResults read_results(const std::string& dir) {
  const std::string path = dir + "/results.json";
  return results_from_json(io::read_json_file(path), path);
}

}  // namespace hps::eval
