#include "train/rm_loss.hpp"

#include "prefs/losses.hpp"

namespace hps::train {

at::Tensor rm_loss_bt(const at::Tensor& scores, const prefs::Selection& sel, double margin) {
  // ℓ_ij = −log σ(r_i − r_j − m) for every (anchor i, negative j) in rank order: [B, K, K].
  at::Tensor l = -at::log_sigmoid(scores.unsqueeze(2) - scores.unsqueeze(1) - margin);
  return prefs::mean_over_preferences(prefs::weighted_pairs(sel.terms.at(0), l), sel.has_pref);
}

at::Tensor rm_loss_pl(const at::Tensor& scores, const prefs::Selection& sel) {
  return prefs::mean_over_preferences(prefs::plackett_luce_nll(scores, sel), sel.has_pref);
}

double pairwise_accuracy(const at::Tensor& scores, const at::Tensor& rewards) {
  const at::Tensor s = scores.detach().to(at::kCPU, at::kDouble), r = rewards.to(at::kCPU, at::kDouble);
  const at::Tensor better = r.unsqueeze(2) > r.unsqueeze(1);                          // [B, k, k] pairs i ≻ j
  const at::Tensor right = better.logical_and(s.unsqueeze(2) > s.unsqueeze(1));
  const double pairs = better.sum().item<double>();
  return pairs > 0 ? right.sum().item<double>() / pairs : 0.0;
}

}  // namespace hps::train
