#include "train/rm_loss.hpp"

#include <limits>

namespace hps::train {

at::Tensor rm_loss_bt(const at::Tensor& scores, double margin) {
  return -at::log_sigmoid(scores.select(1, 0) - scores.select(1, 1) - margin).mean();
}

at::Tensor rm_loss_pl(const at::Tensor& scores, const at::Tensor& rewards) {
  const auto r = rewards.to(scores.device());
  const at::Tensor valid = r.isnan().logical_not();                                   // [B, k]
  const at::Tensor key = at::where(valid, r, at::full({}, -std::numeric_limits<double>::infinity(), r.options()));
  const at::Tensor order = key.argsort(int64_t{1}, /*descending=*/true);              // best first; invalid last
  const at::Tensor s = scores.gather(1, order);                                       // [B, k] in rank order
  const at::Tensor v = valid.gather(1, order);
  const at::Tensor neg = at::full({}, -std::numeric_limits<double>::infinity(), s.options());
  at::Tensor masked = at::where(v, s, neg);
  // logsumexp over the suffix k ≥ j, via a reversed cumulative logsumexp.
  at::Tensor suffix = masked.flip({1}).logcumsumexp(1).flip({1});                      // [B, k]
  // Terms for positions with at least one valid response after them.
  const at::Tensor remaining = v.flip({1}).to(at::kLong).cumsum(1).flip({1});          // valid count from j on
  const at::Tensor use = v.logical_and(remaining >= 2);
  at::Tensor terms = at::where(use, suffix - masked, at::zeros({}, s.options()));
  return terms.sum(1).mean();
}

double pairwise_accuracy(const at::Tensor& scores, const at::Tensor& rewards) {
  const at::Tensor s = scores.detach().to(at::kCPU, at::kDouble), r = rewards.to(at::kCPU, at::kDouble);
  const at::Tensor better = r.unsqueeze(2) > r.unsqueeze(1);                          // [B, k, k] pairs i ≻ j
  const at::Tensor right = better.logical_and(s.unsqueeze(2) > s.unsqueeze(1));
  const double pairs = better.sum().item<double>();
  return pairs > 0 ? right.sum().item<double>() / pairs : 0.0;
}

}  // namespace hps::train
