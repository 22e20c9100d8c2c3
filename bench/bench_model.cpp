// One preference-optimization step as hps runs it, in the shapes of ../shared/bench/hf_pref_bench.py:
// reference forward (no grad) + policy forward/backward of sequence log-probs + the BT or PL loss from
// src/prefs + a fused AdamW step. Prints one JSON line per workload (same fields as the HF script).
//
//   bench_model --preset gpu --device cuda   # the five anchor workloads (H100/H200)
//   bench_model --preset cpu                 # small shapes that finish on a laptop CPU
//   bench_model --shape qwen05 --prompts 2 --n 2 --seqlen 256 [--ckpt] [--naive] [--dtype bfloat16]
//   bench_model --real ../shared/bench/hh_rlhf_lengths.jsonl --preset gpu --device cuda   # real lengths
// --naive computes log-probs from full [B, T, V] logits (what TRL does) instead of the fused chunked path;
// --padded forwards one right-padded row per response (the path before packing) instead of packed rows.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/DeviceAccelerator.h>
#include <c10/core/GradMode.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/batching.hpp"
#include "model/load.hpp"
#include "model/logprobs.hpp"
#include "prefs/losses.hpp"

namespace {

using hps::model::Decoder;
using hps::model::ModelConfig;

ModelConfig shape(const std::string& name) {
  ModelConfig c;
  c.head = hps::model::Head::causal_lm;
  if (name == "qwen05") {
    c.architecture = "Qwen2ForCausalLM";
    c.family = hps::model::Family::qwen2;
    c.vocab_size = 151936, c.hidden_size = 896, c.intermediate_size = 4864, c.num_layers = 24;
    c.num_heads = 14, c.num_kv_heads = 2, c.tie_word_embeddings = true, c.rope.theta = 1e6, c.qkv_bias = true;
  } else if (name == "llama1b") {
    c.architecture = "LlamaForCausalLM";
    c.vocab_size = 128256, c.hidden_size = 2048, c.intermediate_size = 8192, c.num_layers = 16;
    c.num_heads = 32, c.num_kv_heads = 8, c.tie_word_embeddings = true, c.rope.theta = 5e5;
  } else if (name == "small") {  // a CPU-sized Qwen2-like model
    c.architecture = "Qwen2ForCausalLM";
    c.family = hps::model::Family::qwen2;
    c.vocab_size = 32000, c.hidden_size = 256, c.intermediate_size = 1024, c.num_layers = 4;
    c.num_heads = 4, c.num_kv_heads = 2, c.tie_word_embeddings = true, c.qkv_bias = true;
  } else {
    throw std::runtime_error("unknown shape " + name + " (qwen05, llama1b, small)");
  }
  c.head_dim = c.hidden_size / c.num_heads;
  c.max_position_embeddings = 4096;
  c.window.assign(static_cast<size_t>(c.num_layers), 0);
  return c;
}

struct Workload {
  std::string name, shape;
  int64_t n, prompts, seqlen;
  bool ckpt = false;
};

struct Options {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kBFloat16;
  int steps = 6, warm = 2;
  bool naive = false;
  hps::model::Layout layout = hps::model::Layout::packed;
};

std::string engine(const Options& o) {
  if (o.naive) return "hps-naive-logits";
  return o.layout == hps::model::Layout::packed ? "hps-packed" : "hps-padded";
}

std::vector<int64_t> random_ids(int64_t n, int64_t vocab) {
  const at::Tensor t = at::randint(0, vocab, {n}, at::kLong);
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n};
}

double peak_gib(const Options& o) {
  if (o.device.is_cuda()) return at::accelerator::getDeviceStats(o.device.index()).allocated_bytes[0].peak / 1073741824.0;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1048576.0;  // process peak RSS (KiB → GiB); not reset between workloads
}

void sync(const Options& o) {
  if (o.device.is_cuda()) at::accelerator::synchronizeDevice(o.device.index());
}

hps::model::SeqLogprobs logps(const Decoder& m, const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& resp,
                              bool naive, hps::model::Layout layout) {
  if (!naive) return hps::model::sequence_logprobs(m, ids, mask, resp, layout);
  return hps::model::sequence_logprobs_from_logits(m.logits(ids, mask), ids, resp);
}

// A policy, its frozen reference and a fused AdamW over the policy's parameters.
struct Trainee {
  Decoder pol, ref;
  std::vector<at::Tensor> params, exp_avg, exp_avg_sq, steps;
  hps::prefs::LossConfig lc;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);

  Trainee(const ModelConfig& c, const Options& o, bool ckpt, int64_t n)
      : pol(hps::model::random_model(c, o.device, o.dtype, 0.02, 1)), ref(hps::model::random_model(c, o.device, o.dtype, 0.02, 2)) {
    pol.set_requires_grad(true, true);
    pol.state.grad_checkpointing = ckpt;
    ref.set_requires_grad(false, false);
    params = pol.trainable_parameters();
    for (auto& p : params) {
      exp_avg.push_back(at::zeros_like(p));
      exp_avg_sq.push_back(at::zeros_like(p));
      steps.push_back(at::zeros({}, p.options().dtype(at::kFloat)));
    }
    lc.preference = n == 2 ? hps::prefs::Preference::bt : hps::prefs::Preference::pl;
    lc.beta = 0.1;
  }

  // One step on rows [P·n, T] (prompt-major, slot order = rank); `length`, `reward`: [P, n]. Seconds.
  double step(const Options& o, const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& resp,
              const at::Tensor& length, const at::Tensor& reward, hps::model::Layout layout) {
    const int64_t P = length.size(0), n = length.size(1);
    sync(o);
    const auto t0 = std::chrono::steady_clock::now();
    at::Tensor ref_lp;
    {
      c10::AutoGradMode no_grad(false);
      ref_lp = logps(ref, ids, mask, resp, o.naive, layout).sum.view({P, n});
    }
    at::Tensor pol_lp = logps(pol, ids, mask, resp, o.naive, layout).sum.view({P, n});
    auto res = hps::prefs::preference_loss({pol_lp, ref_lp, length, reward, {}}, lc, gen);
    res.loss.backward();
    std::vector<at::Tensor> grads;
    for (auto& p : params) grads.push_back(p.grad());
    at::_foreach_add_(steps, 1);  // the fused kernel expects the step already counted (as torch.optim does)
    at::_fused_adamw_(params, grads, exp_avg, exp_avg_sq, {}, steps, 1e-6, 0.9, 0.999, 0.01, 1e-8, false, false);
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    sync(o);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
};

nlohmann::json run(const Workload& w, const Options& o) {
  if (o.device.is_cuda()) {
    at::accelerator::emptyCache();
    at::accelerator::resetPeakStats(o.device.index());
  }
  const ModelConfig c = shape(w.shape);
  Trainee t(c, o, w.ckpt, w.n);
  const int64_t B = w.prompts * w.n, T = w.seqlen;
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(o.device);
  at::Tensor ids = at::randint(0, c.vocab_size, {B, T}, lopt);
  at::Tensor mask = at::ones({B, T}, lopt);
  at::Tensor resp = at::zeros({B, T}, lopt);
  resp.narrow(1, T / 2, T - T / 2).fill_(1);
  const auto fopt = at::TensorOptions().dtype(at::kFloat).device(o.device);
  at::Tensor length = at::full({w.prompts, w.n}, static_cast<double>(T - T / 2), fopt);
  at::Tensor reward = at::arange(w.n, 0, -1, fopt).unsqueeze(0).expand({w.prompts, w.n}).contiguous();  // slot order = rank
  std::vector<double> times;
  for (int s = 0; s < o.steps + o.warm; ++s) {
    const double dt = t.step(o, ids, mask, resp, length, reward, o.layout);
    if (s >= o.warm) times.push_back(dt);
  }
  std::sort(times.begin(), times.end());
  const double med = times[times.size() / 2];
  const double nparams = static_cast<double>(t.pol.num_parameters());
  const double toks = static_cast<double>(B * T);
  const double flops = 8 * nparams * toks;
  return {{"name", w.name},
          {"engine", engine(o)},
          {"device", o.device.str()},
          {"params_M", std::round(nparams / 1e5) / 10},
          {"prompts", w.prompts},
          {"n", w.n},
          {"seqlen", T},
          {"step_s", std::round(med * 1e4) / 1e4},
          {"tok_per_s", std::round(toks / med)},
          {"prompts_per_s", std::round(w.prompts / med * 100) / 100},
          {"peak_GiB", std::round(peak_gib(o) * 100) / 100},
          {"tflops", std::round(flops / med / 1e11) / 10},
          {"grad_ckpt", w.ckpt}};
}

// The real-lengths workload of ../shared/bench/hf_pref_bench_real.py: batch i = records [P·i, P·i + P) of
// hh_rlhf_lengths.jsonl, prompt cut to 512 and prompt + response to 1024 tokens, random ids, every response a
// row (prompt-major, right-padded as TRL collates). Real tokens/s counts the rows' non-pad tokens, whatever
// the layout forwards; `computed` is what it forwards (packed: each prompt once, no padding).
nlohmann::json run_real(const std::string& name, const std::string& shape_name, const std::string& lengths,
                        int64_t P, const Options& o) {
  if (o.device.is_cuda()) {
    at::accelerator::emptyCache();
    at::accelerator::resetPeakStats(o.device.index());
  }
  std::vector<nlohmann::json> recs;
  std::ifstream in(lengths);
  if (!in) throw std::runtime_error("cannot read " + lengths);
  for (std::string line; std::getline(in, line);) recs.push_back(nlohmann::json::parse(line));
  const ModelConfig c = shape(shape_name);
  Trainee t(c, o, false, 2);
  at::manual_seed(0);
  double time = 0, real = 0, computed = 0, padded = 0;
  for (int s = 0; s < o.steps + o.warm; ++s) {
    std::vector<hps::data::EncodedExample> ex;
    for (int64_t i = P * s; i < P * (s + 1); ++i) {
      const auto& r = recs.at(static_cast<size_t>(i) % recs.size());
      hps::data::EncodedExample e;
      const int64_t p = std::min<int64_t>(r["prompt"].get<int64_t>(), 512);
      e.prompt = random_ids(p, c.vocab_size);
      for (const auto& a : r["responses"]) {
        e.responses.push_back(random_ids(std::min<int64_t>(a.get<int64_t>(), 1024 - p), c.vocab_size));
        e.response_index.push_back(static_cast<int64_t>(e.response_index.size()));
        e.rewards.push_back(e.rewards.empty() ? 1.0 : 0.0);
      }
      ex.push_back(std::move(e));
    }
    const hps::data::Batch b = hps::data::collate(ex, 0);
    const auto fopt = at::TensorOptions().dtype(at::kFloat).device(o.device);
    const at::Tensor length = b.response_mask.sum(1).to(fopt).view({P, 2}), reward = at::tensor({1.0f, 0.0f}, fopt).repeat({P, 1});
    const auto dev = [&](const at::Tensor& x) { return x.to(o.device); };
    const double dt = t.step(o, dev(b.ids), dev(b.mask), dev(b.response_mask), length, reward, o.layout);
    if (s < o.warm) continue;
    time += dt;
    real += b.mask.sum().item<double>();
    padded += static_cast<double>(b.ids.numel());
    computed += o.layout == hps::model::Layout::packed
                    ? static_cast<double>(hps::model::pack_rows(b.ids, b.mask, b.response_mask, at::kCPU).input.ids.numel())
                    : static_cast<double>(b.ids.numel());
  }
  return {{"name", name},
          {"engine", engine(o)},
          {"device", o.device.str()},
          {"prompts_per_step", P},
          {"steps", o.steps},
          {"s_per_step", std::round(time / o.steps * 1e4) / 1e4},
          {"real_tok_per_s", std::round(real / time)},
          {"computed_share", std::round(computed / real * 1000) / 1000},  // tokens forwarded per real token
          {"pad_share", std::round((1 - real / padded) * 1000) / 1000},    // of the padded rows
          {"peak_GiB", std::round(peak_gib(o) * 100) / 100}};
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string preset, shape_name, dtype = "bfloat16", real;
  Workload custom{"custom", "", 2, 2, 256, false};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--preset") preset = next();
    else if (a == "--device") o.device = at::Device(next());
    else if (a == "--dtype") dtype = next();
    else if (a == "--steps") o.steps = std::stoi(next());
    else if (a == "--warm") o.warm = std::stoi(next());
    else if (a == "--naive") o.naive = true;
    else if (a == "--padded") o.layout = hps::model::Layout::padded;
    else if (a == "--real") real = next();
    else if (a == "--shape") custom.shape = next();
    else if (a == "--prompts") custom.prompts = std::stoll(next());
    else if (a == "--n") custom.n = std::stoll(next());
    else if (a == "--seqlen") custom.seqlen = std::stoll(next());
    else if (a == "--ckpt") custom.ckpt = true;
    else {
      std::cerr << "unknown argument " << a << "\n";
      return 2;
    }
  }
  o.dtype = hps::model::parse_dtype(dtype);
  if (o.device.is_cuda() && !o.device.has_index()) o.device = at::Device(at::kCUDA, 0);
  if (o.device.is_cuda()) {
    at::globalContext().setAllowTF32CuBLAS(true);
    at::empty({1}, at::TensorOptions().device(o.device));  // initializes the caching allocator before its stats are read
  }
  if (!real.empty()) {  // the real-lengths workloads: --preset gpu (qwen05, llama1b) or cpu, 16 prompts a step
    if (preset == "cpu") std::cout << run_real("small real HH lengths", "small", real, 4, o).dump() << std::endl;
    else if (preset == "gpu")
      for (const auto& [name, s] : {std::pair{"qwen2-0.5B real HH lengths", "qwen05"}, {"llama-1B real HH lengths", "llama1b"}})
        std::cout << run_real(name, s, real, 16, o).dump() << std::endl;
    else std::cout << run_real(custom.shape + " real HH lengths", custom.shape, real, custom.prompts, o).dump() << std::endl;
    return 0;
  }
  std::vector<Workload> ws;
  if (preset == "gpu") {
    ws = {{"qwen2-0.5B BT/HPS", "qwen05", 2, 8, 1024},
          {"qwen2-0.5B PL n=8", "qwen05", 8, 2, 1024},
          {"llama-1B BT/HPS", "llama1b", 2, 8, 1024},
          {"llama-1B PL n=8", "llama1b", 8, 2, 1024},
          {"llama-1B BT/HPS ckpt", "llama1b", 2, 16, 1024, true}};
  } else if (preset == "cpu") {
    ws = {{"small BT/HPS", "small", 2, 2, 256}, {"small PL n=4", "small", 4, 1, 256}};
  } else if (!custom.shape.empty()) {
    custom.name = custom.shape + (custom.n == 2 ? " BT/HPS" : " PL n=" + std::to_string(custom.n));
    ws = {custom};
  } else {
    std::cerr << "usage: bench_model --preset gpu|cpu [--device cuda] | --shape qwen05|llama1b|small --prompts P --n N "
                 "--seqlen T [--ckpt] [--naive] [--dtype bfloat16] [--steps S --warm W] [--padded]\n"
                 "       bench_model --real ../shared/bench/hh_rlhf_lengths.jsonl --preset gpu|cpu | --shape S --prompts P\n";
    return 2;
  }
  for (const auto& w : ws) std::cout << run(w, o).dump() << std::endl;
  return 0;
}
