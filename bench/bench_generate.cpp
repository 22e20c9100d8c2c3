// Generation and reward-scoring throughput in the shapes of ../shared/bench/hf_gen_bench.py: a Qwen2-0.5B-
// shaped random model in bf16, prompts of 256 tokens, 256 new tokens sampled at temperature 0.9 (batch 16 and
// 128), and a sequence-classification forward at 64 × 512. Prints JSON lines; run it in the same GPU call as
// the HF script and compare ratios.
//   bench_generate [--device cuda] [--shape qwen05|small] [--batches 16,128] [--new 256]
#include <ATen/DeviceAccelerator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "generate/engine.hpp"
#include "model/load.hpp"

namespace {

hps::model::ModelConfig shape(const std::string& name) {
  hps::model::ModelConfig c;
  c.architecture = "Qwen2ForCausalLM";
  c.family = hps::model::Family::qwen2;
  c.qkv_bias = true, c.tie_word_embeddings = true, c.rope.theta = 1e6;
  if (name == "qwen05") {
    c.vocab_size = 151936, c.hidden_size = 896, c.intermediate_size = 4864, c.num_layers = 24, c.num_heads = 14, c.num_kv_heads = 2;
  } else {
    c.vocab_size = 32000, c.hidden_size = 256, c.intermediate_size = 1024, c.num_layers = 4, c.num_heads = 4, c.num_kv_heads = 2;
  }
  c.head_dim = c.hidden_size / c.num_heads;
  c.window.assign(static_cast<size_t>(c.num_layers), 0);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  std::string device = "cpu", shape_name = "small", batches = "16,128";
  int64_t new_tokens = 256, prompt = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--device") device = v;
    else if (a == "--shape") shape_name = v;
    else if (a == "--batches") batches = v;
    else if (a == "--new") new_tokens = std::stoll(v);
    else if (a == "--prompt") prompt = std::stoll(v);
  }
  at::Device dev(device);
  if (dev.is_cuda() && !dev.has_index()) dev = at::Device(at::kCUDA, 0);
  auto sync = [&] {
    if (dev.is_cuda()) at::accelerator::synchronizeDevice(dev.index());
  };
  const auto dtype = dev.is_cuda() ? at::kBFloat16 : at::kFloat;
  auto c = shape(shape_name);
  const auto m = hps::model::random_model(c, dev, dtype, 0.02, 1);
  std::stringstream bs(batches);
  for (std::string b; std::getline(bs, b, ',');) {
    const int64_t B = std::stoll(b);
    std::vector<std::vector<int64_t>> prompts(static_cast<size_t>(B));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    const at::Tensor ids = at::randint(2, c.vocab_size, {B, prompt}, gen, at::kLong);
    for (int64_t i = 0; i < B; ++i) {
      const auto* p = ids[i].data_ptr<int64_t>();
      prompts[static_cast<size_t>(i)].assign(p, p + prompt);
    }
    hps::generate::SamplingConfig sc;
    sc.temperature = 0.9, sc.max_new_tokens = new_tokens;
    double dt = 0;
    for (int rep = 0; rep < 2; ++rep) {  // the first run warms up
      sync();
      const auto t0 = std::chrono::steady_clock::now();
      auto out = hps::generate::generate_ids(m, prompts, sc, {}, 0, 7);
      sync();
      dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    std::printf("{\"name\": \"hps generate %s bs=%lld prompt=%lld new=%lld\", \"device\": \"%s\", \"s\": %.2f, \"new_tok_per_s\": %.0f}\n",
                shape_name.c_str(), static_cast<long long>(B), static_cast<long long>(prompt),
                static_cast<long long>(new_tokens), dev.str().c_str(), dt, static_cast<double>(B * new_tokens) / dt);
    std::fflush(stdout);
  }
  // Reward scoring: the same body with a 1-label score head, forward only.
  auto rc = c;
  rc.head = hps::model::Head::sequence_classification, rc.num_labels = 1, rc.architecture = "Qwen2ForSequenceClassification";
  const auto rm = hps::model::random_model(rc, dev, dtype, 0.02, 2);
  const int64_t B = 64, T = 512;
  const at::Tensor ids = at::randint(2, c.vocab_size, {B, T}, at::TensorOptions().dtype(at::kLong).device(dev));
  const at::Tensor mask = at::ones_like(ids);
  c10::InferenceMode no_grad;
  for (int i = 0; i < 2; ++i) rm.scores(ids, mask);
  sync();
  const int reps = dev.is_cuda() ? 10 : 2;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) rm.scores(ids, mask);
  sync();
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  std::printf("{\"name\": \"hps reward scoring %s seqcls bs=64 len=512\", \"device\": \"%s\", \"s\": %.4f, \"tok_per_s\": %.0f}\n",
              shape_name.c_str(), dev.str().c_str(), dt, static_cast<double>(B * T) / dt);
  return 0;
}
