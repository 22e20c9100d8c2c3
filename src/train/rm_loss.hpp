// Reward-model losses on scores r_θ(x, y): Bradley-Terry on the best/worst pair with an optional margin
// (−log σ(r_w − r_l − m), as Llama-2's reward model), or Plackett-Luce over a whole ranking
// (Σ_j [logsumexp_{k ≥ j} r_(k) − r_(j)] in reward order); and pairwise accuracy.
#pragma once

#include <ATen/ATen.h>

namespace hps::train {

// scores, rewards: [B, k] (rewards NaN where a ragged row has no response). BT uses columns 0 (chosen) and
// 1 (rejected). Returns the mean over prompts.
at::Tensor rm_loss_bt(const at::Tensor& scores, double margin);
at::Tensor rm_loss_pl(const at::Tensor& scores, const at::Tensor& rewards);
// Share of response pairs with different rewards whose scores are ordered like the rewards (ties wrong).
double pairwise_accuracy(const at::Tensor& scores, const at::Tensor& rewards);

}  // namespace hps::train
