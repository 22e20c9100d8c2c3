// What a training run records and prints: OUT/metrics.jsonl (one JSON line per step, StepLog's fields;
// read back as a TrainSummary), progress on the log stream (on a terminal one redrawn line with a bar and
// ETA, otherwise a plain line per step), evaluations, and the reports that are never silent: bad records
// skipped while reading the data, and prompts whose responses all tie.
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "train/train_config.hpp"

namespace hps::train {

struct StepLog {
  int64_t step = 0, epoch = 0;
  double loss = 0, accuracy = 0, rm_dpo = 0, rm_rdpo = 0, chosen_reward = 0, rejected_reward = 0;
  double lr = 0, gamma = 0, grad_norm = 0, tokens_per_s = 0, peak_gib = 0;
  double seconds = 0;  // wall time of the step (forward, backward, update)
  int64_t forward_passes = 0;  // this process's policy forwards: micro-batches, or their token-budget chunks
  bool skipped = false;  // non-finite loss or gradient: no update applied
  int64_t no_preference = 0;  // prompts of this step whose responses all tie (ties = exclude): no loss term
  bool no_update = false;     // every prompt of the step had no preference: nothing to learn, no update
  std::vector<int64_t> lines;                       // source lines of the step's prompts
  std::vector<std::vector<int64_t>> responses;      // response slots forwarded per prompt
};

// One step's line of OUT/metrics.jsonl, written and read by this one pair.
nlohmann::json to_json(const StepLog& s);
StepLog step_from_json(const nlohmann::json& j);

// What a run did over all its steps (a resumed run's included), from its OUT/metrics.jsonl.
struct TrainSummary {
  int64_t steps = 0, prompts = 0;
  int64_t responses = 0;          // responses forwarded, over every prompt of every step
  int64_t no_preference = 0;      // prompts whose responses all tied
  int64_t no_update_steps = 0, skipped_steps = 0;
  // BT and HPS forward 2 per prompt, PL all K; nullopt when no prompt was trained.
  std::optional<double> responses_per_prompt() const;
};
TrainSummary read_train_summary(const std::string& out_dir);

struct EvalLog {
  int64_t step = 0;
  double loss = 0, accuracy = 0, rm_dpo = 0, rm_rdpo = 0;
};

class TrainLog {
 public:
  // Opens OUT/metrics.jsonl for appending. With `resume`, the lines of steps up to `resumed_step` are kept
  // and later ones dropped (they are about to be recomputed); otherwise the file starts empty. Progress
  // is redrawn in place only when `log` is std::cout on a terminal.
  TrainLog(const TrainConfig& cfg, bool resume, int64_t resumed_step, int64_t total, std::ostream& log);

  // The run's first line: task, prompts, steps, method, LoRA or full. `converted_from`: the causal-LM
  // architecture a reward model was made from, or empty.
  void start(size_t train_prompts, size_t eval_prompts, const std::string& converted_from);
  // The count and the first reasons on the log; every one in OUT/skipped_records.jsonl. Nothing when none.
  void skipped_records(const std::vector<data::SkippedRecord>& skipped);
  // One finished step: its metrics line and its progress line.
  void step(const StepLog& s);
  void eval(const EvalLog& e);
  // The total of prompts in this run's steps whose responses all tied, when there were any.
  void ties() const;
  const std::string& metrics_path() const { return metrics_path_; }

 private:
  const TrainConfig& cfg_;
  std::ostream& log_;
  std::string metrics_path_;
  std::ofstream metrics_;
  int64_t total_ = 0, ran_ = 0, no_preference_ = 0;
  bool tty_ = false;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace hps::train
