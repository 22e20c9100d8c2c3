#include "train/optimizer.hpp"

#include <c10/core/GradMode.h>

#include <cmath>

#include "core/enum_names.hpp"
#include "core/error.hpp"

namespace hps::train {

AdamW::AdamW(std::vector<at::Tensor> params, AdamWConfig cfg) : params_(std::move(params)), cfg_(cfg) {
  for (const auto& p : params_) {
    exp_avg_.push_back(at::zeros_like(p));
    exp_avg_sq_.push_back(at::zeros_like(p));
    step_.push_back(at::zeros({}, p.options().dtype(at::kFloat)));
  }
}

void AdamW::step(double lr) {
  std::vector<at::Tensor> p, g, m, v, s;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].grad().defined()) continue;
    p.push_back(params_[i]);
    g.push_back(params_[i].grad());
    m.push_back(exp_avg_[i]);
    v.push_back(exp_avg_sq_[i]);
    s.push_back(step_[i]);
  }
  if (p.empty()) return;
  c10::AutoGradMode no_grad(false);
  // The fused kernel expects the step already counted, as torch.optim does before calling it.
  at::_foreach_add_(s, 1);
  at::_fused_adamw_(p, g, m, v, {}, s, lr, cfg_.beta1, cfg_.beta2, cfg_.weight_decay, cfg_.eps, /*amsgrad=*/false,
                    /*maximize=*/false);
  ++steps_;
}

std::map<std::string, at::Tensor> AdamW::state() const {
  std::map<std::string, at::Tensor> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string k = std::to_string(i);
    out["exp_avg." + k] = exp_avg_[i];
    out["exp_avg_sq." + k] = exp_avg_sq_[i];
    out["step." + k] = step_[i];
  }
  out["steps"] = at::tensor(steps_, at::kLong);
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& s) {
  auto get = [&](const std::string& name, const at::Tensor& like) {
    auto it = s.find(name);
    if (it == s.end()) throw InputError("optimizer state has no tensor '" + name + "'");
    if (it->second.sizes() != like.sizes())
      throw InputError("optimizer state '" + name + "' has shape " + c10::str(it->second.sizes()) + ", expected " +
                       c10::str(like.sizes()) + " (a checkpoint of another model or LoRA setting?)");
    return it->second.to(like.device(), like.scalar_type());
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string k = std::to_string(i);
    exp_avg_[i].copy_(get("exp_avg." + k, exp_avg_[i]));
    exp_avg_sq_[i].copy_(get("exp_avg_sq." + k, exp_avg_sq_[i]));
    step_[i].copy_(get("step." + k, step_[i]));
  }
  auto it = s.find("steps");
  if (it == s.end()) throw InputError("optimizer state has no 'steps'");
  steps_ = it->second.item<int64_t>();
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  c10::AutoGradMode no_grad(false);
  auto norms = at::_foreach_norm(grads, 2);
  at::Tensor total = at::stack(norms).to(at::kDouble).pow(2).sum().sqrt();
  const double n = total.item<double>();
  if (max_norm > 0 && std::isfinite(n)) {
    const double coef = max_norm / (n + 1e-6);
    if (coef < 1.0) at::_foreach_mul_(grads, coef);
  }
  return n;
}

UpdateOutcome guarded_update(AdamW& opt, double lr, double max_grad_norm, bool loss_finite) {
  UpdateOutcome o;
  o.grad_norm = loss_finite ? clip_grad_norm(opt.params(), max_grad_norm) : NAN;
  o.applied = loss_finite && std::isfinite(o.grad_norm);
  if (o.applied) opt.step(lr);
  for (auto p : opt.params()) p.mutable_grad() = at::Tensor();
  return o;
}

namespace {
constexpr EnumNames<ScheduleKind, 3> kSchedules{{{"constant", ScheduleKind::constant},
                                                 {"linear", ScheduleKind::linear},
                                                 {"cosine", ScheduleKind::cosine}}};
}  // namespace

ScheduleKind parse_schedule(const std::string& s) { return parse_enum(s, "train.schedule", kSchedules); }
const char* to_string(ScheduleKind k) { return enum_name(k, kSchedules).data(); }  // the table's names are literals

double lr_at(ScheduleKind kind, double base, int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return base * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  const double rest = static_cast<double>(std::max<int64_t>(1, total - warmup));
  const double progress = static_cast<double>(step - warmup) / rest;
  switch (kind) {
    case ScheduleKind::constant: return base;
    case ScheduleKind::linear: return base * std::max(0.0, static_cast<double>(total - step) / rest);
    case ScheduleKind::cosine: return base * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  }
  return base;
}

}  // namespace hps::train
