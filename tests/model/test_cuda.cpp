// The model on CUDA: the same parity fixtures, gradients equal to the CPU's, the KV cache, half-precision
// SDPA paths with padding masks. Each test skips with a message where there is no GPU.
#include <gtest/gtest.h>

#include "model/load.hpp"
#include "model/logprobs.hpp"
#include "model/lora.hpp"
#include "model/model_helpers.hpp"

namespace hps::model {
namespace {

using test::expected;
using test::max_err_on_real;
using test::model_dir;

#define REQUIRE_CUDA() \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device: CPU parity is covered by Models/*"

const at::Device kCuda(at::kCUDA, 0);

TEST(ModelCuda, LogitsScoresAndLogprobsMatchTransformers) {
  REQUIRE_CUDA();
  for (const std::string arch : {"llama", "qwen2", "mistral"}) {
    auto e = expected(arch);
    Decoder d = load_model(model_dir(arch), {kCuda, std::nullopt});
    at::Tensor ids = e.at("input_ids").to(kCuda), mask = e.at("attention_mask").to(kCuda);
    at::Tensor logits = d.logits(ids, mask).cpu();
    EXPECT_LE(max_err_on_real(logits, e.at("logits"), e.at("attention_mask")), 2e-4) << arch;
    SeqLogprobs lp = sequence_logprobs(d, ids, mask, e.at("response_mask").to(kCuda));
    EXPECT_LE((lp.sum.cpu().to(at::kDouble) - e.at("seq_logp")).abs().max().item<double>(), 2e-4) << arch;
    auto r = expected(arch + "-reward");
    Decoder rm = load_model(model_dir(arch + "-reward"), {kCuda, std::nullopt});
    at::Tensor s = rm.scores(r.at("input_ids").to(kCuda), r.at("attention_mask").to(kCuda)).cpu();
    EXPECT_LE((s.to(at::kDouble) - r.at("scores").to(at::kDouble)).abs().max().item<double>(), 2e-4) << arch;
  }
}

TEST(ModelCuda, LoraMatchesPeftAndGradientsMatchCpu) {
  REQUIRE_CUDA();
  auto e = expected("llama-lora");
  std::vector<at::Tensor> grads[2];
  for (int dev = 0; dev < 2; ++dev) {
    const at::Device device = dev ? kCuda : at::Device(at::kCPU);
    Decoder d = load_model(model_dir("llama"), {device, std::nullopt});
    load_lora(d, model_dir("llama-lora"));
    d.set_requires_grad(false, true);
    d.state.grad_checkpointing = dev == 1;  // also exercises checkpointing on CUDA
    at::Tensor ids = e.at("input_ids").to(device), mask = e.at("attention_mask").to(device);
    EXPECT_LE(max_err_on_real(d.logits(ids, mask).cpu(), e.at("logits"), e.at("attention_mask")), 2e-4);
    sequence_logprobs(d, ids, mask, e.at("response_mask").to(device)).sum.sum().backward();
    for (auto& p : d.trainable_parameters()) grads[dev].push_back(p.grad().cpu());
  }
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i)
    EXPECT_LE((grads[0][i] - grads[1][i]).abs().max().item<double>(), 1e-3) << i;
}

TEST(ModelCuda, HalfPrecisionWithPaddingAndKvCache) {
  REQUIRE_CUDA();
  auto e = expected("mistral");  // sliding window + left/right padding → explicit-mask SDPA path
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    Decoder d = load_model(model_dir("mistral"), {kCuda, dtype});
    at::Tensor ids = e.at("input_ids").to(kCuda), mask = e.at("attention_mask").to(kCuda);
    at::Tensor logits = d.logits(ids, mask).cpu();
    EXPECT_TRUE(at::isfinite(logits).all().item<bool>());
    EXPECT_LE(max_err_on_real(logits, e.at("logits"), e.at("attention_mask")), 0.15) << c10::toString(dtype);
  }
  Decoder d = load_model(model_dir("qwen2"), {kCuda, std::nullopt});
  at::Tensor ids = at::randint(3, 128, {2, 9}, at::TensorOptions().dtype(at::kLong).device(kCuda));
  at::Tensor mask = at::ones_like(ids);
  const at::Tensor full = d.hidden_states(ids, mask);
  KVCache cache = d.make_cache(2, 9);
  at::Tensor h = d.hidden_states_cached(ids.narrow(1, 0, 5), mask.narrow(1, 0, 5), cache);
  double err = (h - full.narrow(1, 0, 5)).abs().max().item<double>();
  for (int64_t t = 5; t < 9; ++t)
    err = std::max(err, (d.hidden_states_cached(ids.narrow(1, t, 1), mask.narrow(1, t, 1), cache).squeeze(1) -
                         full.select(1, t)).abs().max().item<double>());
  EXPECT_LE(err, 1e-4);
}

}  // namespace
}  // namespace hps::model
