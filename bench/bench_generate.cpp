// Generation and reward-scoring throughput in the shapes of ../shared/bench/hf_gen_bench.py: a Qwen2-0.5B-
// shaped random model in bf16, prompts of 256 tokens, 256 new tokens sampled at temperature 0.9 (batch 16 and
// 128), and a sequence-classification forward at 64 × 512. Prints JSON lines; run it in the same GPU call as
// the HF script and compare ratios.
//   bench_generate [--device cuda] [--shape qwen05|small] [--batches 16,128] [--new 256]
// The realistic workload (what the HPS recipe runs; bench/hf_gen_realistic.py is its HF twin):
//   bench_generate --workload hh --lengths ../shared/bench/hh_rlhf_lengths.jsonl [--model DIR] [--prompts 32]
//                  [--n 8] [--new 256] [--batch-prompts 8] [--per-batch 0|1] [--copy-prompt 0|1] [--device cuda]
// prompts with the file's prompt lengths (cut to 512 tokens; random ids), n samples each at temperature 0.9,
// and EOS made likely by a logit bias so that every step ends a response with probability p = 1 / (the
// file's mean response length, capped at --new): on a near-uniform random model the bias
// T·ln((V−1)·p/(1−p)) gives geometric response lengths with that mean, so samples stop at very different
// steps, as real ones do. A fixed EOS probability per step, not the file's exact lengths: HF's generate has
// no per-sample length, and a bias is a sampling parameter both engines have.
#include <ATen/DeviceAccelerator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
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

struct Workload {
  std::string lengths;
  int64_t prompts = 32, n = 8, new_tokens = 256, batch_prompts = 8;
  bool per_batch = false;  // --per-batch 1: one engine call per batch (no refill), as HF's generate runs
  bool copy_prompt = false;  // --copy-prompt 1: each sample holds a copy of its prompt's KV cache
};

// Runs the realistic workload twice (the first warms up) and prints one JSON line.
void realistic(const hps::model::Decoder& m, const Workload& w, const std::function<void()>& sync) {
  std::ifstream in(w.lengths);
  if (!in) throw std::runtime_error("cannot open " + w.lengths);
  std::vector<int64_t> prompt_len;
  double resp_sum = 0, resp_count = 0;
  for (std::string line; std::getline(in, line) && static_cast<int64_t>(prompt_len.size()) < w.prompts;) {
    const auto j = nlohmann::json::parse(line);
    prompt_len.push_back(std::min<int64_t>(512, std::max<int64_t>(1, j["prompt"].get<int64_t>())));
    for (const auto& r : j["responses"]) resp_sum += std::min<double>(r.get<double>(), w.new_tokens), resp_count += 1;
  }
  const int64_t V = m.config.vocab_size;
  const int64_t eos = m.config.eos_token_ids.empty() ? 0 : m.config.eos_token_ids[0];
  hps::generate::SamplingConfig sc;
  sc.temperature = 0.9, sc.max_new_tokens = w.new_tokens, sc.n = w.n;
  const double p = resp_count > 0 ? resp_count / resp_sum : 1.0 / 64;  // EOS probability per step
  sc.logit_bias = {{eos, sc.temperature * std::log((static_cast<double>(V) - 1) * p / (1 - p))}};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  std::vector<std::vector<int64_t>> prompts;
  for (const int64_t len : prompt_len) {
    const at::Tensor ids = at::randint(2, V, {len}, gen, at::kLong);
    prompts.emplace_back(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + len);
  }
  double dt = 0;
  int64_t tokens = 0;
  for (int rep = 0; rep < 2; ++rep) {
    tokens = 0;
    sync();
    const auto t0 = std::chrono::steady_clock::now();
    // As `hps generate` calls the engine: batch_prompts · n rows in flight, refilled from the waiting prompts
    // (or, --per-batch 1, one call per batch of prompts: no refill). The same streams either way.
    const size_t step = w.per_batch ? static_cast<size_t>(w.batch_prompts) : prompts.size();
    for (size_t s = 0; s < prompts.size(); s += step) {
      const size_t e = std::min(prompts.size(), s + step);
      const std::vector<std::vector<int64_t>> part(prompts.begin() + static_cast<std::ptrdiff_t>(s), prompts.begin() + static_cast<std::ptrdiff_t>(e));
      std::vector<uint64_t> streams;
      for (size_t i = s; i < e; ++i) streams.push_back(i);
      for (const auto& per_prompt : hps::generate::generate_ids(m, part, sc, {eos}, 0, 7, 0, streams, w.batch_prompts * w.n,
                                                                            !w.copy_prompt))
        for (const auto& sample : per_prompt) tokens += static_cast<int64_t>(sample.size());
    }
    sync();
    dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double samples = static_cast<double>(prompts.size() * static_cast<size_t>(w.n));
  std::printf("{\"name\": \"hps generate hh-lengths prompts=%zu n=%lld new<=%lld batch_prompts=%lld%s%s\", \"device\": \"%s\", "
              "\"s\": %.2f, \"new_tok_per_s\": %.0f, \"mean_response\": %.1f, \"eos_p\": %.4f}\n",
              prompts.size(), static_cast<long long>(w.n), static_cast<long long>(w.new_tokens), static_cast<long long>(w.batch_prompts),
              w.per_batch ? " per-batch" : "", w.copy_prompt ? " copied-prompt-cache" : "", m.device().str().c_str(), dt, static_cast<double>(tokens) / dt, static_cast<double>(tokens) / samples, p);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string device = "cpu", shape_name = "small", batches = "16,128", workload = "fixed", model_dir;
  int64_t new_tokens = 256, prompt = 256;
  Workload w;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--device") device = v;
    else if (a == "--workload") workload = v;
    else if (a == "--lengths") w.lengths = v;
    else if (a == "--model") model_dir = v;
    else if (a == "--prompts") w.prompts = std::stoll(v);
    else if (a == "--n") w.n = std::stoll(v);
    else if (a == "--batch-prompts") w.batch_prompts = std::stoll(v);
    else if (a == "--per-batch") w.per_batch = v == "1";
    else if (a == "--copy-prompt") w.copy_prompt = v == "1";
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
  if (workload == "hh") {
    w.new_tokens = new_tokens;
    hps::model::Decoder m = model_dir.empty() ? hps::model::random_model(shape(shape_name), dev, dtype, 0.02, 1)
                                              : hps::model::load_model(model_dir);
    if (!model_dir.empty()) m.to(dev, dtype);
    realistic(m, w, sync);
    return 0;
  }
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
