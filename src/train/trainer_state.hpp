// What a checkpoint holds of a run, beside the crash-safe folder mechanics of run_checkpoint.hpp:
//   adapter/ (LoRA, PEFT format) or model/ (full fine-tuning, HF format, with the tokenizer files),
//   optimizer.safetensors (AdamW's moments and step counts),
//   rng.safetensors (torch's CPU generator, and the CUDA one on a GPU; rank 0's in a data-parallel run),
//   trainer_state.json (step, total steps, epoch, data cursor, consecutive bad steps, the resume-compatibility
//   fields and the effective config).
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "data/batching.hpp"
#include "model/decoder.hpp"
#include "train/optimizer.hpp"
#include "train/train_config.hpp"

namespace hps::train {

// Settings a resumed run must share with its checkpoint: everything that shapes the model, the data a step
// sees, or the loss, under their TOML names. What may change on resume: train.lr, schedule, warmup, AdamW
// betas/eps/decay, max_grad_norm, save_every, keep_last, eval_every, stop_after, max_bad_steps, ref_cache,
// packing, max_tokens_per_micro_batch, model.device, dtype/autocast, grad_checkpointing (docs/training.md).
// train.global_batch_prompts (batch_prompts × the processes of a data-parallel run) stands for the batch: a run
// resumes at another world size when the global batch is kept.
nlohmann::json compat_fields(const TrainConfig& c, int64_t world_size = 1);

// The parts of a run a checkpoint saves and restores, borrowed from the trainer for one call.
struct RunState {
  model::Decoder& policy;          // the trained model (full fine-tuning: replaced on restore)
  std::unique_ptr<AdamW>& opt;     // restore builds a new one over the restored parameters
  data::PreferenceLoader& loader;  // epoch and cursor
  int64_t& step;                   // optimizer steps done
  int64_t& bad_steps;              // consecutive non-finite steps
  int64_t world_size = 1;          // processes of a data-parallel run
  nlohmann::json inputs;           // fingerprints of the data and base model files (checked on resume)
  std::string data_format;         // the format the data was read as (the model card says it)
};

// Writes OUT/checkpoint-<step>/ (keeping train.keep_last) and says so on `log`. `model_config`: the
// config.json saved with a fully fine-tuned model (unused with LoRA); `config_text`: the effective TOML.
void save_trainer_state(const TrainConfig& cfg, const std::string& config_text, const nlohmann::json& model_config,
                        int64_t total, const RunState& s, std::ostream& log);

// Restores the checkpoint folder `dir` into `s`, after verify_checkpoint (every file as saved). ConfigError
// naming the first compatibility field whose value differs from `cfg` ("lora.rank was 8, now 4") or the
// first input file whose fingerprint differs ("data … changed"); fields a checkpoint of an older hps did not
// record are not checked. Settings a resumed run may change (learning rate, its schedule, AdamW's, clipping)
// are said on `log` when they change. InputError for a trainer_state.json that does not fit this run (step
// outside [1, total], wrong types).
void restore_trainer_state(const std::string& dir, const TrainConfig& cfg, int64_t total, const RunState& s,
                           std::ostream& log);

}  // namespace hps::train
