// Device agnosticism: on a CUDA machine every cell gives the CPU's values and the same sampled
// negatives (draws come from the CPU generator). Skips with a message where there is no GPU.
#include "prefs/helpers.hpp"

namespace hps::test {
namespace {

TEST(LossDevice, CudaMatchesCpuForEveryFixtureCell) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device: the CPU path is covered by the other tests";
  for_each_fixture_case([](const nlohmann::json& set, const prefs::LossConfig& c, const nlohmann::json&) {
    auto cpu = batch_from(set);
    prefs::PrefBatch gpu{cpu.policy_logp.cuda().set_requires_grad(true), cpu.ref_logp.cuda(), cpu.length.cuda(),
                         cpu.reward.cuda(), cpu.valid.cuda(), {}};
    at::Tensor draws = to_tensor(set["draws"], at::kDouble);
    auto want = prefs::preference_loss(cpu, c, draws);
    auto got = prefs::preference_loss(gpu, c, draws);
    got.loss.backward();
    EXPECT_TRUE(got.per_prompt.is_cuda());
    EXPECT_TRUE(at::allclose(got.per_prompt.cpu(), want.per_prompt, 1e-9, 1e-9));
    EXPECT_TRUE(at::equal(got.rejected.cpu(), want.rejected));
    EXPECT_TRUE(at::isfinite(gpu.policy_logp.grad()).all().item<bool>());
  });
}

}  // namespace
}  // namespace hps::test
