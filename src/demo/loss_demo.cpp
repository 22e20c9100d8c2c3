#include "demo/loss_demo.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adam.h>

#include <chrono>
#include <cstdio>

#include "core/seed.hpp"
#include "core/config_schema.hpp"
#include "core/error.hpp"
#include "prefs/config_io.hpp"
#include "prefs/losses.hpp"

namespace hps::demo {

DemoConfig read_demo_config(const Config& cfg) {
  cfg.check_known("", {"demo", "loss", "gamma"});
  using D = DemoConfig;
  static const TableSchema<D> schema =
      TableSchema<D>("demo")
          .add("seed", &D::seed)
          .add("prompts", &D::prompts, at_least<int64_t>(1))
          .add("responses", &D::responses, Rule<int64_t>([](const std::string& key, int64_t v) {
                 if (v < 3) throw ConfigError(key + " must be ≥ 3 (one best, hard and easy negatives)");
               }))
          .add("hard", &D::hard)
          .add("steps", &D::steps, at_least<int64_t>(1))
          .add("lr", &D::lr, positive<double>());
  DemoConfig d;
  schema.read(cfg, d);
  d.loss = prefs::read_loss_config(cfg);
  d.gamma = prefs::read_gamma_schedule(cfg);
  if (d.hard < 1 || d.hard > d.responses - 2) throw ConfigError("demo.hard must be in [1, responses - 2]");
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
      auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(c.seed, SeedPurpose::demo_draws));
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
