// The preference models BT / PL / HPS over any parameterization: the loss of a batch of prompts,
// each with K ranked responses. Equations: docs/losses.md; paper §3–4 and Appendix E.
//
//   auto res = preference_loss(batch, config, gen);   // res.loss: [] mean over prompts
//
// Stochastic cells (HPS single-sample, BT max_random / random) draw two uniforms per prompt from a
// seeded CPU generator; pass them explicitly to replay a step exactly. A trainer selects once
// (select_slots, selection.hpp), forwards the slots the selection reads, and passes the same Selection.
//
// Ties (LossConfig::ties = exclude): a prompt whose responses all share one reward carries no preference:
// its per_prompt is 0, has_pref is false, and the mean runs over the prompts that have one.
#pragma once

#include <ATen/ATen.h>

#include "prefs/loss_config.hpp"
#include "prefs/metrics.hpp"
#include "prefs/ranking.hpp"
#include "prefs/selection.hpp"

namespace hps::prefs {

struct LossResult {
  at::Tensor loss;        // [] mean of per_prompt over the prompts with a preference (0 when none has one)
  at::Tensor per_prompt;  // [B] (0 where has_pref is false)
  at::Tensor has_pref;    // [B] bool: the prompt has two responses of different reward (or ties = by_slot)
  int64_t no_preference = 0;  // prompts without a preference: they train nothing
  // The pair each prompt reports, as original slots [B]: BT its pair, HPS the best and the sampled
  // negative, PL / HPS-full the best and the hardest negative y_τ(2).
  at::Tensor chosen;
  at::Tensor rejected;   // -1 where the prompt has no preference
  at::Tensor rejected2;  // [B] Appendix E only: the negative of L2 (sampled, or y_τ(3) for hps_full)
  at::Tensor draws;      // [B, 2] the uniforms used (undefined for deterministic cells)
  Margins margins;       // Table 1 metrics on (chosen, rejected); meaningless where has_pref is false
};

// Plackett-Luce negative log-likelihood of scores u [B, K] in the selection's rank order, with Efron's tie
// correction (eq. (5) when nothing ties); [B], 0 for a prompt whose responses all tie. `reversed`: the ranking
// reversed (label smoothing). Shared by PL × DPO and the PL reward-model loss.
at::Tensor plackett_luce_nll(const at::Tensor& u, const Selection& s, bool reversed = false);
// Σ_ij anchor_i · negative_j · ℓ_ij of a term's weights over pair losses ℓ [B, K(anchor), K(negative)] in
// rank order; [B]. Zero-weight pairs are never read (they may hold anything finite or not).
at::Tensor weighted_pairs(const Term& t, const at::Tensor& pair_losses);

// Mean of per-prompt values [B] over the prompts where has_pref [B] is set, differentiable (0 when none is):
// how every loss and metric of this core averages, so a prompt without a preference never dilutes the mean.
at::Tensor mean_over_preferences(const at::Tensor& per_prompt, const at::Tensor& has_pref);
// The same for a metric of a result, as a number.
double mean_over_preferences(const LossResult& r, const at::Tensor& per_prompt);

// True when the cell draws random numbers (HPS single-sample, BT max_random / random).
bool is_stochastic(const LossConfig& c);

// The loss under a selection made beforehand from the same rewards; throws InternalError when the selection
// reads a slot that `batch.forwarded` marks as not forwarded.
LossResult preference_loss(const PrefBatch& batch, const LossConfig& c, const Selection& sel);
// Selects from batch.reward first. Deterministic cells ignore `draws`; stochastic ones need [B, 2] in [0, 1).
LossResult preference_loss(const PrefBatch& batch, const LossConfig& c, const at::Tensor& draws);
LossResult preference_loss(const PrefBatch& batch, const LossConfig& c, at::Generator& gen);

}  // namespace hps::prefs
