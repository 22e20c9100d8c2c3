// AdamW with decoupled weight decay (Loshchilov & Hutter), global-norm gradient clipping and learning-rate
// schedules, matching torch.optim.AdamW, torch.nn.utils.clip_grad_norm_ and transformers' schedules
// (tests/fixtures/train.json from tools/fixtures/make_train_fixtures.py).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hps::train {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

class AdamW {
 public:
  AdamW(std::vector<at::Tensor> params, AdamWConfig cfg);
  // One update of every parameter that has a gradient, at learning rate lr (fused kernel, CPU or CUDA).
  void step(double lr);
  int64_t steps() const { return steps_; }
  // Moments and step counts under "exp_avg.<i>", "exp_avg_sq.<i>", "step.<i>" (i = parameter index).
  std::map<std::string, at::Tensor> state() const;
  // Restores state(); throws InputError naming the first missing or mis-shaped tensor.
  void load_state(const std::map<std::string, at::Tensor>& s);
  const std::vector<at::Tensor>& params() const { return params_; }

 private:
  std::vector<at::Tensor> params_, exp_avg_, exp_avg_sq_, step_;
  AdamWConfig cfg_;
  int64_t steps_ = 0;
};

// The global L2 norm of all gradients; when it exceeds max_norm, scales them by max_norm / (norm + 1e-6)
// (torch's formula). Returns the norm before clipping, as a double (one host sync). max_norm <= 0: no clipping.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

// One guarded update: clips, and applies the step only when the loss and the gradient norm are finite
// (never a NaN step); gradients are cleared either way. Returns the pre-clip norm (NaN when the loss was not
// finite) and whether the update was applied.
struct UpdateOutcome {
  double grad_norm = 0;
  bool applied = false;
};
UpdateOutcome guarded_update(AdamW& opt, double lr, double max_grad_norm, bool loss_finite);

enum class ScheduleKind { constant, linear, cosine };
ScheduleKind parse_schedule(const std::string& s);
const char* to_string(ScheduleKind k);
// Learning rate for optimizer step `step` (0-based) of `total`, with linear warmup over `warmup` steps.
double lr_at(ScheduleKind kind, double base, int64_t step, int64_t warmup, int64_t total);

}  // namespace hps::train
