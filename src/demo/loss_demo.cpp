#include "demo/loss_demo.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adam.h>

#include <chrono>
#include <cstdio>

#include "core/error.hpp"
#include "prefs/config_io.hpp"
#include "prefs/losses.hpp"

namespace hps::demo {

DemoConfig read_demo_config(const Config& cfg) {
  cfg.check_known("", {"demo", "loss", "gamma"});
  cfg.check_known("demo", {"seed", "prompts", "responses", "hard", "steps", "lr"});
  DemoConfig d;
  d.seed = cfg.get_int("demo.seed", d.seed);
  d.prompts = cfg.get_int("demo.prompts", d.prompts);
  d.responses = cfg.get_int("demo.responses", d.responses);
  d.hard = cfg.get_int("demo.hard", d.hard);
  d.steps = cfg.get_int("demo.steps", d.steps);
  d.lr = cfg.get_double("demo.lr", d.lr);
  d.loss = prefs::read_loss_config(cfg);
  d.gamma = prefs::read_gamma_schedule(cfg);
  if (d.prompts < 1) throw ConfigError("'demo.prompts' must be >= 1");
  if (d.responses < 3) throw ConfigError("'demo.responses' must be >= 3 (one best, hard and easy negatives)");
  if (d.hard < 1 || d.hard > d.responses - 2) throw ConfigError("'demo.hard' must be in [1, responses - 2]");
  if (d.steps < 1) throw ConfigError("'demo.steps' must be >= 1");
  if (!(d.lr > 0)) throw ConfigError("'demo.lr' must be > 0");
  return d;
}

namespace {

struct Task {
  at::Tensor reward;  // [P, K] r*, used as r_est (exact annotation)
  at::Tensor length;  // [P, K] response tokens
  at::Tensor is_hard; // [P, K] bool
};

Task make_task(const DemoConfig& c) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed);
  const auto opt = at::TensorOptions().dtype(at::kDouble);
  const int64_t P = c.prompts, K = c.responses;
  // Slot 0 best, slots 1..hard near-misses, the rest clearly bad; then shuffle slots per prompt so the
  // position carries no information.
  at::Tensor r = at::empty({P, K}, opt);
  r.select(1, 0).fill_(1.0);
  r.narrow(1, 1, c.hard).uniform_(0.6, 0.9, gen);
  r.narrow(1, 1 + c.hard, K - 1 - c.hard).uniform_(-2.0, -1.0, gen);
  at::Tensor hard = at::zeros({P, K}, opt.dtype(at::kBool));
  hard.narrow(1, 1, c.hard).fill_(true);
  at::Tensor perm = at::rand({P, K}, gen, opt).argsort(/*dim=*/int64_t{1});
  Task t;
  t.reward = r.gather(1, perm);
  t.is_hard = hard.gather(1, perm);
  t.length = at::randint(5, 31, {P, K}, gen, opt);
  return t;
}

}  // namespace

std::vector<DemoRow> run_loss_demo(const DemoConfig& c, const std::vector<prefs::Objective>& objectives,
                                   const std::vector<prefs::Preference>& preferences) {
  const Task task = make_task(c);
  const int64_t P = c.prompts, K = c.responses;
  const auto opt = at::TensorOptions().dtype(at::kDouble);
  at::Tensor ref = at::full({P, K}, -std::log(static_cast<double>(K)), opt);  // uniform π_ref
  at::Tensor best = task.reward.argmax(1, /*keepdim=*/true);                  // [P, 1]
  at::Tensor is_best = at::zeros({P, K}, opt.dtype(at::kBool)).scatter_(1, best, true);

  std::vector<DemoRow> rows;
  for (auto objective : objectives) {
    for (auto preference : preferences) {
      prefs::LossConfig lc = c.loss;
      lc.objective = objective;
      lc.preference = preference;
      lc.multi_preferred = false;
      auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed + 1);
      at::Tensor theta = at::zeros({P, K}, opt).set_requires_grad(true);
      torch::optim::Adam adam({theta}, torch::optim::AdamOptions(c.lr));
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t step = 0; step < c.steps; ++step) {
        lc.gamma = prefs::gamma_at(c.gamma, step, c.steps);
        prefs::PrefBatch batch{at::log_softmax(theta, 1), ref, task.length, task.reward, {}, {}};
        auto res = prefs::preference_loss(batch, lc, gen);
        adam.zero_grad();
        res.loss.backward();
        adam.step();
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

      at::NoGradGuard no_grad;
      at::Tensor logp = at::log_softmax(theta, 1);
      at::Tensor s = lc.beta * (logp - ref);                                   // [P, K] implicit reward
      at::Tensor s_best = s.gather(1, best).squeeze(1);                        // [P]
      at::Tensor neg_inf = at::full({}, -INFINITY, opt);
      at::Tensor s_hardest = at::where(is_best, neg_inf, s).amax(1);           // max over dispreferred
      at::Tensor s_negmean = at::where(is_best, at::zeros({}, opt), s).sum(1) / (K - 1);
      DemoRow row;
      row.objective = std::string(prefs::to_string(objective));
      row.preference = std::string(prefs::to_string(preference));
      row.margin_hardest = (s_best - s_hardest).mean().item<double>();
      row.margin_mean = (s_best - s_negmean).mean().item<double>();
      row.p_best = logp.exp().gather(1, best).mean().item<double>();
      row.p_hard = at::where(task.is_hard, logp.exp(), at::zeros({}, opt)).sum(1).mean().item<double>();
      row.forwarded = (preference == prefs::Preference::bt || preference == prefs::Preference::hps) ? 2 : K;
      row.seconds = secs;
      rows.push_back(row);
    }
  }
  return rows;
}

void print_demo_table(const std::vector<DemoRow>& rows, std::ostream& os) {
  char line[256];
  std::snprintf(line, sizeof line, "%-7s %-9s %15s %13s %8s %8s %10s %8s\n", "obj", "pref", "margin_hardest",
                "margin_mean", "p_best", "p_hard", "fwd/prompt", "time_s");
  os << line;
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, "%-7s %-9s %15.4f %13.4f %8.4f %8.4f %10lld %8.3f\n", r.objective.c_str(),
                  r.preference.c_str(), r.margin_hardest, r.margin_mean, r.p_best, r.p_hard,
                  static_cast<long long>(r.forwarded), r.seconds);
    os << line;
  }
}

}  // namespace hps::demo
