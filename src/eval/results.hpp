// What `hps eval` measures, as typed structs: results.json is EvalResults written by to_json and read back by
// results_from_json (the one place that names its keys), and the report's columns name the fields.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/metrics.hpp"

namespace hps::eval {

struct OracleSummary {           // the exact reward r* of a synthetic task
  double mean = 0, top1 = 0;     // top1: the best sample by r* per prompt
  double harmful_rate = 0, exact_rate = 0;
  int64_t samples = 0;
};

struct WinRateResult {           // best-of-N reward against a baseline's, per prompt
  std::string against;
  WinRate rate;
  double tie_band = 0;
};

struct BaselineReward {
  double mean = 0, top1 = 0;
};

struct Bleu {                    // best sample vs the test set's best reference
  double nltk_sentence_mean = 0, sacrebleu_corpus = 0;
  int64_t pairs = 0;
};

struct Kl {                      // KL(π ‖ π_ref) on each prompt's winning sample
  double mean = 0;
  int64_t prompts = 0;
};

struct TrainingCost {            // recorded by the pipeline: the training stage's wall time and forward work
  double seconds = 0;
  std::optional<double> responses_per_prompt;
};

struct EvalResults {
  std::string name;
  RewardStats reward;
  std::vector<double> reward_samples;            // every sample's reward (combined reports' histograms)
  std::optional<OracleSummary> oracle;
  std::vector<double> oracle_samples;
  std::optional<WinRateResult> win_rate;
  std::optional<BaselineReward> baseline_reward;
  std::optional<Bleu> bleu;
  std::optional<Margins> margins;                // Table 1 on best vs worst response of each test prompt
  std::optional<Margins> margins_hardest;        // best vs the hardest negative (Theorem 3's quantity)
  std::optional<Kl> kl_winning;
  std::optional<TrainingCost> training;
};

nlohmann::json to_json(const EvalResults& r);
// InputError naming `source` and the key when a field has the wrong type; absent optional parts stay empty.
EvalResults results_from_json(const nlohmann::json& j, const std::string& source);
EvalResults read_results(const std::string& dir);  // DIR/results.json

}  // namespace hps::eval
