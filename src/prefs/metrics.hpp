// Reward-margin metrics of the paper's Table 1, per prompt, for a pair (y_w, y_l).
#pragma once

#include <ATen/ATen.h>

namespace hps::prefs {

struct Margins {
  at::Tensor rm_dpo;           // [B] log π_θ/π_ref (y_w) − log π_θ/π_ref (y_l)            (Table 1, RM_DPO)
  at::Tensor rm_rdpo;          // [B] RM_DPO − α·(|y_w| − |y_l|), α = 0.01 in the paper    (Table 1, RM_R-DPO)
  at::Tensor chosen_reward;    // [B] β·log π_θ/π_ref (y_w)
  at::Tensor rejected_reward;  // [B] β·log π_θ/π_ref (y_l)
  at::Tensor accuracy;         // [B] 1 where chosen_reward > rejected_reward, else 0
};

// All inputs [B]; outputs are detached (metrics, not losses).
Margins reward_margins(const at::Tensor& logp_w, const at::Tensor& ref_w, const at::Tensor& len_w,
                       const at::Tensor& logp_l, const at::Tensor& ref_l, const at::Tensor& len_l, double beta,
                       double alpha = 0.01);

}  // namespace hps::prefs
