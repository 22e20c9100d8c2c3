// `hps eval`: the paper's evaluation of a policy's generations (scored by a reward model) — reward mean and
// top-1 of N samples, BLEU against the test set's best reference response, win / tie / lose against a
// baseline's generations, and, given the models' log-probs, reward margins on the test pairs and KL to the
// reference on the winning responses. Writes results.json, report.md (a Table-2-style row) and rewards.svg.
//
// Evaluation computes on numbers. The model-based metrics come in three steps, so that scoring with models
// is a stage of its own (pipeline/eval_stage.hpp loads the models and runs them):
//   model_requests(data, encoder) → the sequences to score → ModelScores (policy and reference log-probs)
//   → evaluate(job, data, scores) → EvalResults → write_eval(...).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "data/batching.hpp"
#include "data/dataset.hpp"
#include "data/pretokenized.hpp"
#include "eval/results.hpp"
#include "model/score_records.hpp"

namespace hps::eval {

struct OracleVerdict {
  double reward = 0;
  bool harmful = false, exact = false;
};

struct EvalJob {
  std::string generations;  // scored ranked-list JSONL of the policy (hps generate + hps score)
  std::string baseline;     // the same for another model (optional: win rate)
  std::string test;         // test dataset with reference responses (optional: BLEU, margins)
  std::string name = "policy", baseline_name = "baseline";
  double tie_band = 0.0;
  int64_t max_prompt_length = 1024;  // margins and KL cut prompts to their last N tokens, as generation did
  std::string out;          // folder for results.json, report.md, rewards.svg
  // Optional exact reward of a response (a synthetic task's r*): adds the oracle summary and its samples.
  std::function<OracleVerdict(const nlohmann::json& prompt, const std::string& response)> oracle;
  std::optional<TrainingCost> training;  // recorded as is (the pipeline's training stage)
};

// One scored generation: a prompt, its N responses and their rewards.
struct Scored {
  int64_t source_line = 0;
  nlohmann::json prompt;
  std::vector<std::string> responses;
  std::vector<double> rewards;
};

// The job's files, read once.
struct EvalData {
  std::vector<Scored> generations, baseline;
  std::optional<data::Dataset> test;
};
EvalData read_eval_data(const EvalJob& job);

// How evaluation tokenizes a test record for the model-based metrics: the prompt through data::prompt_ids,
// as generation sampled it (cut to its last max_prompt_length tokens; prompt + response up to twice that).
data::Encoder eval_encoder(const text::Tokenizer& tok, const text::ChatTemplate& chat, int64_t max_prompt_length = 1024);

// The sequences the model-based metrics need (empty without a test set): Table 1's pairs per test prompt —
// best vs worst, and best vs the hardest negative (Theorem 3's quantity), tied pairs left out — and each
// prompt's winning generated response (KL).
struct ModelRequests {
  std::vector<data::TokenizedRecord> worst, hardest, winners;
};
ModelRequests model_requests(const EvalData& data, const data::Encoder& enc);

// The requests' log-probs under the policy and under the reference, request by request.
struct PolicyAndReference {
  std::vector<model::RecordLogprobs> policy, reference;
};
struct ModelScores {
  PolicyAndReference worst, hardest, winners;
};

// Every metric the data (and the scores, when given) allow.
EvalResults evaluate(const EvalJob& job, const EvalData& data, const ModelScores* scores, std::ostream& log);

// DIR/results.json, report.md and rewards.svg (with the baseline's rewards beside the policy's); the report on `log`.
void write_eval(const EvalJob& job, const EvalData& data, const EvalResults& results, std::ostream& log);

}  // namespace hps::eval
