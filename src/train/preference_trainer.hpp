// `hps train`, `hps sft`, `hps train-rm`: preference fine-tuning with any preference model × parameterization
// of src/prefs, SFT, or a reward model, LoRA or full, as one explicit loop (no Trainer base class):
// select → tokenize → forward → loss → step. The loop composes typed parts, each in its own file: the step
// of each recipe (steps.hpp), checkpoint contents and resume checks (trainer_state.hpp), metrics and
// progress (train_log.hpp), the reference cache (ref_cache.hpp), the causal-LM → reward-model conversion
// (reward_model.hpp), AdamW and schedules (optimizer.hpp).
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

#include "train/steps.hpp"
#include "train/train_config.hpp"
#include "train/train_log.hpp"

namespace hps::train {

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
