// `hps eval`: the paper's evaluation of a policy's generations (scored by a reward model) — reward mean and
// top-1 of N samples, BLEU against the test set's best reference response, win / tie / lose against a
// baseline's generations, and, given the models, reward margins on the test pairs and KL to the reference on
// the winning responses. Writes results.json, report.md (a Table-2-style row) and rewards.svg.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

namespace hps::eval {

struct EvalJob {
  std::string generations;  // scored ranked-list JSONL of the policy (hps generate + hps score)
  std::string baseline;     // the same for another model (optional: win rate)
  std::string test;         // test dataset with reference responses (optional: BLEU, margins)
  std::string policy, adapter, reference, tokenizer, chat_format, device = "cpu";  // optional: margins, KL
  std::string name = "policy", baseline_name = "baseline";
  double tie_band = 0.0;
  std::string out;          // folder for results.json, report.md, rewards.svg
};

nlohmann::json run_eval(const EvalJob& job, std::ostream& log);

// Combines several `hps eval` result folders into one Table-2-style report: report.md (one row per method),
// rewards.svg (their reward distributions overlaid) and margins.svg (RM_DPO / RM_R-DPO per method).
void combine_reports(const std::vector<std::pair<std::string, std::string>>& runs, const std::string& out,
                     std::ostream& log);

// A bar chart of named values per method, e.g. margins (exposed for tests).
std::string bar_chart_svg(const std::string& title, const std::vector<std::string>& methods,
                          const std::vector<std::pair<std::string, std::vector<double>>>& groups);

// A self-contained SVG: overlaid histograms of reward values per method (exposed for tests).
std::string reward_histogram_svg(const std::vector<std::pair<std::string, std::vector<double>>>& series);

}  // namespace hps::eval
