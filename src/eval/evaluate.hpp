// `hps eval`: the paper's evaluation of a policy's generations (scored by a reward model) — reward mean and
// top-1 of N samples, BLEU against the test set's best reference response, win / tie / lose against a
// baseline's generations, and, given the models, reward margins on the test pairs and KL to the reference on
// the winning responses. Writes results.json, report.md (a Table-2-style row) and rewards.svg.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <functional>
#include <string>

#include "data/batching.hpp"
#include "eval/report.hpp"

namespace hps::eval {

struct OracleVerdict {
  double reward = 0;
  bool harmful = false, exact = false;
};

struct EvalJob {
  std::string generations;  // scored ranked-list JSONL of the policy (hps generate + hps score)
  std::string baseline;     // the same for another model (optional: win rate)
  std::string test;         // test dataset with reference responses (optional: BLEU, margins)
  std::string policy, adapter, reference, tokenizer, chat_format, device = "cpu";  // optional: margins, KL
  std::string name = "policy", baseline_name = "baseline";
  double tie_band = 0.0;
  int64_t max_prompt_length = 1024;  // margins and KL cut prompts to their last N tokens, as generation did
  std::string out;          // folder for results.json, report.md, rewards.svg
  // Optional exact reward of a response (a synthetic task's r*): adds "oracle" {mean, top1 (best of N by r*),
  // harmful_rate, exact_rate} and "oracle_samples" to the results.
  std::function<OracleVerdict(const nlohmann::json& prompt, const std::string& response)> oracle;
  nlohmann::json extra;     // merged into results.json as is (e.g. the pipeline's "training" cost)
};

// How evaluation tokenizes a test record for the model-based metrics (margins, KL on the winning samples):
// the prompt through data::prompt_ids, as generation sampled it (cut to its last max_prompt_length tokens;
// prompt + response up to twice that).
data::Encoder eval_encoder(const text::Tokenizer& tok, const text::ChatTemplate& chat, int64_t max_prompt_length = 1024);

nlohmann::json run_eval(const EvalJob& job, std::ostream& log);

}  // namespace hps::eval
