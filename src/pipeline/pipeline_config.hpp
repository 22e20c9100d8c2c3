// The settings of `hps pipeline` as typed structs, and each training stage's train::TrainConfig read from the
// pipeline's own file by the reader of `hps train` (so every `hps train` option is reachable from the pipeline).
//
// The file: [run] [task] [policy] [generate] [eval] are the pipeline's own; the trainer's tables compose per stage:
//   [data] [model]                       every training stage ([data] max_prompt_length also generation,
//                                        scoring and evaluation: one prompt budget for every stage);
//   [train] [loss] [gamma] [lora] [rm]   the preference stages (train_<method>), [train] methods listing them;
//   [methods.M.<table>]                  method M only, over the shared tables (e.g. [methods.hps.gamma] end = 3);
//   [sft.<table>], [reward.<table>]      the SFT and reward-model stages, over [data] and [model]
//                                        ([sft.data] path and [reward.data] path name their datasets).
// The pipeline supplies what connects the stages — model and tokenizer paths, the preference stages' data and
// preference model, out_dir, seed, device, chat format — and refuses those keys in the file, naming the
// setting to use instead.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "pipeline/task.hpp"
#include "train/train_config.hpp"

namespace hps::pipeline {

struct RunSettings {
  std::string dir;             // required; relative to the current directory, like any output folder
  uint64_t seed = 0;
  int64_t seeds = 1;           // > 1: the whole pipeline per seed in RUN/seed-S, then mean ± sd
  std::string device = "cpu";
};

struct PolicySettings {
  std::string path, tokenizer;  // tokenizer: default path
  std::string chat_format;      // "" = the tokenizer's own chat_template (Jinja), or a built-in name
};

struct GenerateSettings {
  std::string prompts;          // required without [task]
  int64_t n = 4, max_new_tokens = 64, batch_prompts = 8;
  double temperature = 0.9;
  bool distinct = true;         // annotate keeps each distinct response once per prompt
  int64_t max_prompt_length = 0;  // 0: [data] max_prompt_length (also the annotation's scoring)
};

enum class RewardInit { policy, sft };
const char* to_string(RewardInit r);

struct RewardSettings {
  std::string path;             // a given reward model; "" = trained with train-rm on [reward.data] path
  std::string tokenizer, chat_format;  // a given model's own (default: its folder, its chat_template)
  RewardInit init = RewardInit::policy;  // a trained one starts from the policy's weights or the SFT model
  std::string data;             // [reward.data] path: default the SFT data
};

struct EvalSettings {
  std::string prompts, test;    // prompts: required without [task]; test: default prompts
  int64_t n = 0;                // 0: generate.n
  int64_t max_prompt_length = 0;  // 0: [data] max_prompt_length
};

struct PipelineConfig {
  RunSettings run;
  std::optional<TaskRecipe> task;  // [task]: the task supplies the policy and the data
  PolicySettings policy;
  int64_t max_prompt_length = 0;   // [data] max_prompt_length; 0 = 1024, or half the policy's positions if fewer
  bool sft = true;                 // [sft] enabled
  std::string sft_data;            // [sft.data] path: default generate.prompts
  GenerateSettings generate;
  RewardSettings reward;
  std::vector<std::string> methods{"bt", "pl", "hps"};  // [train] methods: preference models, in table order
  EvalSettings eval;
  Config file;                     // the whole configuration: the training stages read their views of it
};

// Reads and checks everything up front (unknown keys, bad values, keys the pipeline supplies, every training
// stage's TrainConfig, missing model folders and data files), so a typo fails before the first stage runs.
// Relative input paths resolve against the config file's folder (Config::get_path).
PipelineConfig read_pipeline_config(const Config& cfg, const TaskKinds& kinds);

// Every key with its effective value (--print-config): the pipeline's tables as TOML, then each training stage's
// full settings as comments (the stage reads them from the shared tables and its own).
void write_pipeline_config(const PipelineConfig& p, std::ostream& out);

// What the pipeline supplies to a training stage.
struct TrainInputs {
  std::string model, tokenizer, data, out_dir, chat_format, device;
  uint64_t seed = 0;
  int64_t max_prompt_length = 1024;  // data.max_length defaults to twice this
};

// A training stage as the trainer runs it: its config, and the view of the file it was read from (the
// ineffective-settings warnings, the stage's record and the trainer's saved config use it).
struct TrainStage {
  train::TrainConfig config;
  Config view;
};

// The TrainConfig of stage "sft", "reward" or a method of p.methods: its view of p.file read by
// train::read_train_config over the pipeline's defaults for it (max_steps 50, LoRA for methods only,
// checkpoints every kSaveEvery steps, bad records skipped, …: docs/pipeline.md) and `in`.
TrainStage stage_train_config(const PipelineConfig& p, const std::string& stage, const TrainInputs& in);

// Training stages save a checkpoint this often unless [train] / [sft.train] / … save_every says otherwise,
// so a stage killed mid-run resumes from at most this many steps back.
inline constexpr int64_t kSaveEvery = 100;

}  // namespace hps::pipeline
