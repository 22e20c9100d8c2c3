// Settings of `hps train` (preference fine-tuning): plain structs with the paper's defaults where §6 states
// them (β 0.1, lr 5e-7, cosine schedule, 2 epochs, LoRA r 8 / α 16, γ −5 → 5) and TRL's otherwise.
#pragma once

#include <array>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "data/dataset.hpp"
#include "model/lora.hpp"
#include "prefs/gamma_schedule.hpp"
#include "prefs/loss_config.hpp"
#include "train/optimizer.hpp"

namespace hps::train {

struct ModelSettings {
  std::string path;             // [model] path: HF folder (config.json, safetensors, tokenizer files)
  std::string tokenizer;        // default: path
  std::string dtype;            // "" = the checkpoint's; float32 | bfloat16 | float16
  std::string device = "cpu";
  bool grad_checkpointing = false;
  std::string autocast;         // "" | bfloat16 | float16: mixed precision over fp32 weights (torch.autocast)
};

struct DataSettings {
  std::string path;
  data::DatasetOptions options;
  std::string chat_format;      // "" = the tokenizer's own chat_template (Jinja), or a built-in name
  int64_t max_prompt_length = 512, max_length = 1024;
  double eval_fraction = 0.0;   // held-out share of records (deterministic split by seed)
};

// train.ref_cache: score every response of every record once with the reference (OUT/ref_logps.safetensors)
// and read those values in the steps instead of running the reference forward. The reference is frozen and
// the data offline, so the cache is always valid for preference training; `auto` (the default) turns it on
// when it costs no more reference forwards than the run would do (preference_trainer.cpp says which).
enum class RefCacheMode { automatic, on, off };

struct LoopSettings {
  int64_t epochs = 2, max_steps = 0;  // max_steps > 0 overrides epochs
  int64_t batch_prompts = 8, grad_accum = 1;
  double lr = 5e-7;
  ScheduleKind schedule = ScheduleKind::cosine;
  double warmup_ratio = 0.1;
  AdamWConfig adamw{0.9, 0.999, 1e-8, 0.0};
  double max_grad_norm = 1.0;
  uint64_t seed = 0;
  std::string out_dir = "runs/hps";
  int64_t save_every = 0;       // 0: only at the end
  int64_t keep_last = 2;
  int64_t eval_every = 0;       // 0: only at the end (when eval_fraction > 0)
  int64_t max_bad_steps = 5;    // consecutive non-finite steps before aborting
  int64_t stop_after = 0;       // > 0: stop (after saving) once this many steps ran — for tests and staged runs
  RefCacheMode ref_cache = RefCacheMode::automatic;  // reference log-probs of every response computed once
  int64_t max_tokens_per_micro_batch = 0;  // > 0: forward each micro-batch in chunks of whole prompts of at most
                                           // this many computed tokens (same gradient; less activation memory)
  double ddp_bucket_cap_mb = 25;  // data-parallel: gradients all-reduced in buckets of this many MiB while backward
                                  // runs (c10d's Reducer; HF's ddp_bucket_cap_mb); 0: one all-reduce after backward
  bool packing = true;          // padding-free rows, each prompt forwarded once for all its responses; false: the
                                // padded path (one row per response, padded to the longest)
};

// What is trained: the policy with a preference loss (`hps train`), the policy on the best responses
// (`hps sft`), or a reward model with a score head (`hps train-rm`).
enum class Task { preference, sft, reward };
const char* to_string(Task t);

struct TrainConfig {
  Task task = Task::preference;
  double rm_margin = 0.0;       // [rm] margin: BT reward-model loss −log σ(r_w − r_l − margin)
  ModelSettings model;
  bool use_lora = true;
  model::LoraConfig lora;       // r 8, α 16, dropout 0.05, all seven projections
  DataSettings data;
  LoopSettings train;
  prefs::LossConfig loss;
  prefs::GammaSchedule gamma;
};

// The tables `hps train | sft | train-rm` read; the pipeline composes a stage's view of its file from them.
inline constexpr std::array<std::string_view, 7> kTrainTables{"model", "lora", "data", "train", "loss", "gamma", "rm"};

// Keys that change when a run saves or stops, not what it computes: the pipeline neither reruns a finished stage
// nor restarts an interrupted one for them (a killed stage may be resumed with another save_every).
inline constexpr std::array<std::string_view, 3> kRunControlKeys{"train.save_every", "train.keep_last",
                                                                 "train.stop_after"};

// Every key of those tables, as "table.key" (what the pipeline must let through to the trainer).
std::vector<std::string> train_config_keys();

// What `hps train | sft | train-rm` trains with when a key is not given: the structs' defaults; LoRA for
// preference training only (TRL's SFT and reward trainers fine-tune fully); BT pairs for a reward model.
TrainConfig train_defaults(Task task);

// Reads [model], [lora], [data], [train], [loss], [gamma], [rm] of `cfg` over `base` (base.task says what is
// trained): a key `cfg` does not set keeps base's value. [loss] and [gamma] are read by prefs' readers over
// LossConfig's and GammaSchedule's defaults, except loss.preference, which keeps base's. Unknown keys, bad
// values and an empty model.path or data.path throw ConfigError.
TrainConfig read_train_config(const Config& cfg, const TrainConfig& base);
// `hps train | sft | train-rm`: over train_defaults(task).
TrainConfig read_train_config(const Config& cfg, Task task = Task::preference);
// Every key of every table with its effective value, as TOML that reads back to `t` (--print-config).
void write_train_config(const TrainConfig& t, std::ostream& out);

// Settings given explicitly in `cfg` that change nothing for this task, objective and preference model, each
// as "key: why" ([loss] / [gamma] keys the cell ignores, a loss for SFT, rm.margin outside train-rm with bt).
// `hps train | sft | train-rm` refuse them; the pipeline warns.
std::vector<std::string> ineffective_settings(const Config& cfg, const TrainConfig& t);

}  // namespace hps::train
