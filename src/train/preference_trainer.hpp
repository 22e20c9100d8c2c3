// `hps train`: preference fine-tuning with any preference model × parameterization of src/prefs, LoRA or
// full, as one explicit recipe (no Trainer base class): select → tokenize → forward → loss → step.
//
// Per step only the responses the method needs are tokenized and forwarded: BT and sampled HPS 2 per
// prompt (more only when the best responses tie: a tie group shares the preferred weight), PL and HPS-full
// all K. The slots come from one prefs::Selection per prompt, made from the float64 rewards and the step's
// draws before the forward and handed to the loss, which asserts it reads only forwarded slots.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "data/dataset.hpp"
#include "prefs/selection.hpp"
#include "train/train_config.hpp"

namespace hps::train {

// The selection of one record under draws u [1, 2] (its rewards in float64; rank order without rewards):
// prefs::read_slots(sel, 0) are the responses to forward, and the loss reads exactly those.
prefs::Selection select_record(const data::PreferenceRecord& r, const prefs::LossConfig& lc, const at::Tensor& u);

struct StepLog {
  int64_t step = 0, epoch = 0;
  double loss = 0, accuracy = 0, rm_dpo = 0, rm_rdpo = 0, chosen_reward = 0, rejected_reward = 0;
  double lr = 0, gamma = 0, grad_norm = 0, tokens_per_s = 0, peak_gib = 0;
  bool skipped = false;  // non-finite loss or gradient: no update applied
  int64_t no_preference = 0;  // prompts of this step whose responses all tie (ties = exclude): no loss term
  bool no_update = false;     // every prompt of the step had no preference: nothing to learn, no update
  std::vector<int64_t> lines;                       // source lines of the step's prompts
  std::vector<std::vector<int64_t>> responses;      // response slots forwarded per prompt
};

struct EvalLog {
  int64_t step = 0;
  double loss = 0, accuracy = 0, rm_dpo = 0, rm_rdpo = 0;
};

class PreferenceTrainer {
 public:
  // `config_text` is the effective TOML, saved with every checkpoint.
  PreferenceTrainer(TrainConfig cfg, std::string config_text);
  ~PreferenceTrainer();

  // Trains to the end (or train.stop_after steps); with `resume`, continues from the newest complete
  // checkpoint in train.out_dir (a fresh start when there is none). Progress lines go to `log`; metrics to
  // OUT/metrics.jsonl. Returns the steps run in this call.
  std::vector<StepLog> run(bool resume, std::ostream& log);

  std::vector<EvalLog> evals() const;
  int64_t total_steps() const;

  // Set from a signal handler: the run saves a checkpoint after the current step and returns.
  static std::atomic<bool>& stop_requested();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hps::train
