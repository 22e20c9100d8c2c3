// AdamW, gradient clipping and schedules against PyTorch / transformers (tests/fixtures/train.json).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "test_util.hpp"
#include "train/optimizer.hpp"

namespace hps::train {
namespace {

const nlohmann::json& fx() {
  static const nlohmann::json j = io::read_json_file(test::fixtures_dir() + "/train.json");
  return j;
}

at::Tensor tensor(const nlohmann::json& flat, const nlohmann::json& shape) {
  return at::tensor(flat.get<std::vector<double>>(), at::kDouble).reshape(shape.get<std::vector<int64_t>>());
}

TEST(AdamW, MatchesTorchOptimAdamWStepByStep) {
  const auto& c = fx()["adamw"];
  std::vector<at::Tensor> params;
  for (size_t i = 0; i < c["shapes"].size(); ++i) params.push_back(tensor(c["init"][i], c["shapes"][i]).requires_grad_(true));
  AdamW opt(params, {c["betas"][0], c["betas"][1], c["eps"], c["weight_decay"]});
  for (size_t s = 0; s < c["lr"].size(); ++s) {
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = tensor(c["grads"][s][i], c["shapes"][i]);
    opt.step(c["lr"][s].get<double>());
    for (size_t i = 0; i < params.size(); ++i)
      EXPECT_LE((params[i].detach() - tensor(c["after"][s][i], c["shapes"][i])).abs().max().item<double>(), 1e-12)
          << "step " << s << " param " << i;
  }
  EXPECT_EQ(opt.steps(), 6);
}

TEST(AdamW, StateRoundTripContinuesIdentically) {
  const auto& c = fx()["adamw"];
  auto make = [&] {
    std::vector<at::Tensor> p;
    for (size_t i = 0; i < c["shapes"].size(); ++i) p.push_back(tensor(c["init"][i], c["shapes"][i]).requires_grad_(true));
    return p;
  };
  auto a = make(), b = make();
  AdamW oa(a, {0.9, 0.95, 1e-8, 0.1}), ob(b, {0.9, 0.95, 1e-8, 0.1});
  auto feed = [&](std::vector<at::Tensor>& p, size_t s) {
    for (size_t i = 0; i < p.size(); ++i) p[i].mutable_grad() = tensor(c["grads"][s][i], c["shapes"][i]);
  };
  for (size_t s = 0; s < 3; ++s) feed(a, s), oa.step(0.01), feed(b, s), ob.step(0.01);
  // A fresh optimizer over b's parameters restored from a's state continues exactly like a.
  AdamW resumed(b, {0.9, 0.95, 1e-8, 0.1});
  resumed.load_state(oa.state());
  for (size_t s = 3; s < 6; ++s) feed(a, s), oa.step(0.01), feed(b, s), resumed.step(0.01);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i]));
  auto bad = oa.state();
  bad["exp_avg.0"] = at::zeros({7});
  EXPECT_THAT(test::message_of<InputError>([&] { resumed.load_state(bad); }), ::testing::HasSubstr("'exp_avg.0' has shape"));
}

TEST(ClipGradNorm, MatchesTorch) {
  const auto& c = fx()["clip"];
  std::vector<at::Tensor> params{at::zeros({4}, at::kDouble).requires_grad_(true), at::zeros({2, 3}, at::kDouble).requires_grad_(true)};
  params[0].mutable_grad() = tensor(c["grads"][0], nlohmann::json{4});
  params[1].mutable_grad() = tensor(c["grads"][1], nlohmann::json{2, 3});
  const double n = clip_grad_norm(params, c["max_norm"]);
  EXPECT_NEAR(n, c["total_norm"].get<double>(), 1e-12);
  EXPECT_LE((params[0].grad() - tensor(c["clipped"][0], nlohmann::json{4})).abs().max().item<double>(), 1e-12);
  EXPECT_LE((params[1].grad() - tensor(c["clipped"][1], nlohmann::json{2, 3})).abs().max().item<double>(), 1e-12);
}

TEST(Schedule, MatchesTransformers) {
  int n = 0;
  for (const auto& s : fx()["schedules"]) {
    const auto kind = parse_schedule(s["kind"]);
    for (size_t step = 0; step < s["lr"].size(); ++step, ++n)
      EXPECT_NEAR(lr_at(kind, s["base"], static_cast<int64_t>(step), s["warmup"], s["total"]), s["lr"][step].get<double>(), 1e-12)
          << s["kind"] << " warmup " << s["warmup"] << " total " << s["total"] << " step " << step;
  }
  EXPECT_GT(n, 50);
}

}  // namespace
}  // namespace hps::train
