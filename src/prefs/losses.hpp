// The preference models BT / PL / HPS over any parameterization: the loss of a batch of prompts,
// each with K ranked responses. Equations: docs/losses.md; paper §3–4 and Appendix E.
//
//   auto res = preference_loss(batch, config, gen);   // res.loss: [] mean over prompts
//
// Stochastic cells (HPS single-sample, BT max_random / random) draw two uniforms per prompt from a
// seeded CPU generator; pass them explicitly to replay a step exactly.
#pragma once

#include <ATen/ATen.h>

#include "prefs/loss_config.hpp"
#include "prefs/metrics.hpp"
#include "prefs/ranking.hpp"

namespace hps::prefs {

struct LossResult {
  at::Tensor loss;        // [] mean of per_prompt
  at::Tensor per_prompt;  // [B]
  // The pair each prompt reports, as original slots [B]: BT its pair, HPS the best and the sampled
  // negative, PL / HPS-full the best and the hardest negative y_τ(2).
  at::Tensor chosen;
  at::Tensor rejected;
  at::Tensor rejected2;  // [B] Appendix E only: the negative of L2 (sampled, or y_τ(3) for hps_full)
  at::Tensor draws;      // [B, 2] the uniforms used (undefined for deterministic cells)
  Margins margins;       // Table 1 metrics on (chosen, rejected)
};

// True when the cell draws random numbers (HPS single-sample, BT max_random / random).
bool is_stochastic(const LossConfig& c);

// Deterministic cells ignore `draws`; stochastic ones need draws [B, 2] in [0, 1).
LossResult preference_loss(const PrefBatch& batch, const LossConfig& c, const at::Tensor& draws);
LossResult preference_loss(const PrefBatch& batch, const LossConfig& c, at::Generator& gen);

}  // namespace hps::prefs
