// One micro-batch of each training recipe, as a free function over explicit inputs: select → forward →
// loss → metrics. `hps train` runs preference_step, `hps sft` sft_step, `hps train-rm` reward_step; the
// trainer (preference_trainer.cpp) owns the loop, accumulation and the update.
//
// Selection happens once per prompt, before tokenizing, from the record's float64 rewards
// (prefs::select_slots): only the selected responses are tokenized and forwarded, and the same selection is
// handed to the loss, which reads exactly those slots.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "data/batching.hpp"
#include "data/dataset.hpp"
#include "model/decoder.hpp"
#include "model/packing.hpp"
#include "prefs/losses.hpp"
#include "prefs/selection.hpp"
#include "train/ref_cache.hpp"

namespace hps::train {

// The selection of one record under draws u [1, 2] (its rewards in float64; rank order without rewards):
// prefs::read_slots(sel, 0) are the responses to forward, and the loss reads exactly those.
prefs::Selection select_record(const data::PreferenceRecord& r, const prefs::LossConfig& lc, const at::Tensor& u);

// What a step computes with, borrowed from the trainer for one call.
struct StepModels {
  model::Decoder& policy;                  // trained; its ForwardState is set per forward and restored after
  const model::Decoder* ref = nullptr;     // full fine-tuning: the frozen reference; null: the policy, adapters off
  const RefCache* cache = nullptr;         // train.ref_cache: reference values read instead of computed
  at::Device device = at::kCPU;
  std::optional<at::ScalarType> autocast;  // [model] autocast: low-precision matmuls over fp32 weights
  model::Layout layout = model::Layout::packed;  // train.packing: how a micro-batch's rows are forwarded
  // train.max_tokens_per_micro_batch > 0: a micro-batch is forwarded in chunks of whole prompts of at most this
  // many computed tokens (token_chunks), each chunk's backward run at once so only one chunk's activations
  // live. The step's gradient is the whole micro-batch's: chunk c's loss (a mean over its w_c prompts with a
  // preference; SFT: tokens) is weighted w_c / W. `backward_scale(W)` (called once per micro-step with
  // gradients, on every rank, W the micro-batch's weight) returns what the trainer would have multiplied the
  // whole loss by (1 / grad_accum; data-parallel: the rank's share, see preference_trainer.cpp). The
  // MicroStep's loss then comes back without gradients: its backward is done.
  int64_t max_tokens = 0;
  std::function<double(double weight)> backward_scale;
  bool chunked() const { return max_tokens > 0; }
};

// One micro-batch's loss and metrics (averaged over the prompts that carry a preference).
struct MicroStep {
  at::Tensor loss;  // []: differentiable when the step ran with grad; NaN when the log-probs were not finite
  // What `loss` is a mean over: prompts with a preference (SFT: response tokens). A data-parallel step
  // reweights each rank's loss by weight / (the sum over ranks) so the step's gradient is that of one process
  // over the whole global batch. 0 for an empty micro-batch (a shard's part of a short last batch).
  double weight = 0;
  double accuracy = 0, rm_dpo = 0, rm_rdpo = 0, chosen = 0, rejected = 0;
  int64_t no_preference = 0;  // prompts whose responses all tie: no loss term
  data::Batch rows;           // what was forwarded (source lines, response slots)
  int64_t tokens = 0;         // real tokens forwarded
  int64_t forwards = 1;       // forward passes: the chunks of train.max_tokens_per_micro_batch (0: empty batch)
};

// The chunks a micro-batch is forwarded in: consecutive prompt ranges [i0, i1) that each cost at most `budget`
// computed tokens (packed: each prompt once plus its responses; padded: rows × the longest row). A prompt
// over the budget on its own is a chunk of its own. Greedy in the loader's order, so the chunks depend on the
// lengths only: deterministic and resume-exact. budget 0: one chunk.
std::vector<std::pair<int64_t, int64_t>> token_chunks(const data::Batch& b, int64_t budget, model::Layout layout);

// Each step takes the loader's next batch; nullopt when its epoch is exhausted (nothing is drawn then).
//
// Preference: two uniforms per prompt (always, whatever the method), drawn from
// derive_seed(draw_seed, slot_draws, source line) — a function of the run's seed, the step and the prompt,
// never of the batch's composition or the rank, so a data-parallel run sees the negatives a single process
// sees — then the selection, policy and reference log-probs at their slots of a [B, K] batch, and
// prefs::preference_loss under `lc` (its γ is the step's).
std::optional<MicroStep> preference_step(const StepModels& m, data::PreferenceLoader& ld, bool grad,
                                         uint64_t draw_seed, const prefs::LossConfig& lc);
// The uniforms [1, 2] preference_step draws for the prompt on source line `line`.
at::Tensor prompt_draws(uint64_t draw_seed, int64_t line);
// SFT: the best response of each prompt (highest reward, first on ties; the first without rewards);
// token-level NLL over every response token of the batch (TRL's completion-only SFT loss).
std::optional<MicroStep> sft_step(const StepModels& m, data::PreferenceLoader& ld, bool grad);
// Reward model: BT on the best/worst groups (margin `margin`) or PL over the whole list
// (`loss.preference`), selected with `loss.ties` as the preference losses select; pairwise accuracy.
std::optional<MicroStep> reward_step(const StepModels& m, data::PreferenceLoader& ld, bool grad,
                                     const prefs::LossConfig& loss, double margin);

// Reference log-probs of a batch's rows, [B·k] float on m.device, without gradients: from the cache
// (prompt-only rows of ragged batches get 0, never read), the frozen reference, or the policy with its
// adapters and dropout off. `packed`: the batch already packed (m.layout packed), shared with the policy.
at::Tensor ref_logprobs(const StepModels& m, const data::Batch& b, const model::PackedRows* packed = nullptr);

}  // namespace hps::train
