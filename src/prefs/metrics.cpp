#include "prefs/metrics.hpp"

namespace hps::prefs {

Margins reward_margins(const at::Tensor& logp_w, const at::Tensor& ref_w, const at::Tensor& len_w,
                       const at::Tensor& logp_l, const at::Tensor& ref_l, const at::Tensor& len_l, double beta,
                       double alpha) {
  at::Tensor dw = (logp_w - ref_w).detach(), dl = (logp_l - ref_l).detach();  // [B] log-ratios
  Margins m;
  m.rm_dpo = dw - dl;
  m.rm_rdpo = m.rm_dpo - alpha * (len_w - len_l).detach().to(dw.scalar_type());
  m.chosen_reward = beta * dw;
  m.rejected_reward = beta * dl;
  m.accuracy = (m.chosen_reward > m.rejected_reward).to(dw.scalar_type());
  return m;
}

}  // namespace hps::prefs
