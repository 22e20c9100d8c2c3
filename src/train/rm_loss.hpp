// Reward-model losses on scores r_θ(x, y), over the same selection and tie rule as the preference losses
// (prefs/selection.hpp): Bradley-Terry on the best/worst pair with an optional margin (−log σ(r_w − r_l − m),
// as Llama-2's reward model; tied best or worst responses averaged over their group), or Plackett-Luce over
// the whole ranking with Efron's tie correction; and pairwise accuracy. A prompt whose responses all tie
// carries no preference: it adds nothing and the mean runs over the others.
#pragma once

#include <ATen/ATen.h>

#include "prefs/selection.hpp"

namespace hps::train {

// scores: [B, K] in the rank order of `sel` (BT: a max_min selection; PL: any). Returns the mean over the
// prompts with a preference (0, still differentiable, when none has one).
at::Tensor rm_loss_bt(const at::Tensor& scores, const prefs::Selection& sel, double margin);
at::Tensor rm_loss_pl(const at::Tensor& scores, const prefs::Selection& sel);
// scores, rewards: [B, k] (rewards NaN where a ragged row has no response). Share of response pairs with
// different rewards whose scores are ordered like the rewards (ties wrong).
double pairwise_accuracy(const at::Tensor& scores, const at::Tensor& rewards);

}  // namespace hps::train
