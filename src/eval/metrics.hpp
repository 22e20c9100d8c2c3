// Evaluation arithmetic: reward statistics of N samples per prompt, win / tie / lose rates with bootstrap
// confidence intervals, and the paper's Table 1 margins from sequence log-probs.
#pragma once

#include <cstdint>
#include <vector>

namespace hps::eval {

struct RewardStats {
  double mean = 0;  // over every sample of every prompt
  double top1 = 0;  // mean over prompts of the best sample's reward (the paper's reported number, N = 5)
  int64_t prompts = 0, samples = 0;
};
RewardStats reward_stats(const std::vector<std::vector<double>>& rewards);

struct WinRate {
  double win = 0, tie = 0, lose = 0;  // shares of prompts
  double win_lo = 0, win_hi = 0;      // 95 % percentile bootstrap interval of the win share
  int64_t prompts = 0;
};
// Per prompt, a wins when its score exceeds b's by more than tie_band (and loses when below by more).
WinRate win_rate(const std::vector<double>& a, const std::vector<double>& b, double tie_band = 0.0,
                 int64_t bootstrap = 1000, uint64_t seed = 0);

struct Margins {
  double rm_dpo = 0, rm_rdpo = 0, accuracy = 0;  // means over pairs; accuracy: RM_DPO > 0
  int64_t pairs = 0;
};
// Table 1: RM_DPO = [log π(y_w) − log π_ref(y_w)] − [log π(y_l) − log π_ref(y_l)];
// RM_R-DPO = RM_DPO − α (|y_w| − |y_l|).
Margins reward_margins(const std::vector<double>& pol_w, const std::vector<double>& ref_w, const std::vector<int64_t>& len_w,
                       const std::vector<double>& pol_l, const std::vector<double>& ref_l, const std::vector<int64_t>& len_l,
                       double alpha = 0.01);

}  // namespace hps::eval
