// Forward + backward time of the loss core per preference model, on [B, K] log-probs.
// The loss itself is tiny next to the model forward; this guards against the K² PL path or the CPU
// sampler becoming a bottleneck. Run: ./build/bench/bench_losses [--benchmark_filter=...]
#include <ATen/CPUGeneratorImpl.h>
#include <benchmark/benchmark.h>

#include "prefs/losses.hpp"

namespace {

using hps::prefs::Preference;

void BM_loss(benchmark::State& state, Preference pref) {
  const int64_t B = state.range(0), K = state.range(1);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  auto opt = at::TensorOptions().dtype(at::kFloat);
  at::Tensor logp = (at::randn({B, K}, gen, opt) * 10 - 100).set_requires_grad(true);
  at::Tensor ref = at::randn({B, K}, gen, opt) * 10 - 100;
  at::Tensor len = at::randint(5, 200, {B, K}, gen, opt);
  at::Tensor reward = at::randn({B, K}, gen, opt);
  hps::prefs::LossConfig c;
  c.preference = pref;
  c.gamma = 2.0;
  for (auto _ : state) {
    auto res = hps::prefs::preference_loss({logp, ref, len, reward, {}}, c, gen);
    res.loss.backward();
    benchmark::DoNotOptimize(logp.grad());
    logp.mutable_grad().reset();
  }
  state.SetItemsProcessed(state.iterations() * B);
}

}  // namespace

BENCHMARK_CAPTURE(BM_loss, bt, Preference::bt)->Args({64, 8})->Args({64, 100});
BENCHMARK_CAPTURE(BM_loss, pl, Preference::pl)->Args({64, 8})->Args({64, 100});
BENCHMARK_CAPTURE(BM_loss, hps, Preference::hps)->Args({64, 8})->Args({64, 100});
BENCHMARK_CAPTURE(BM_loss, hps_full, Preference::hps_full)->Args({64, 8})->Args({64, 100});
BENCHMARK_MAIN();
