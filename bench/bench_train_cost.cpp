// The paper's cost argument, measured: one epoch of `hps train` per preference model on a fixed setting
// (random Qwen2-like model, K responses per prompt), with the responses forwarded per prompt. The paper
// reports PL 168 h vs BT 63 h vs HPS 64 h; HPS should cost what BT costs, far below PL.
//   bench_train_cost [--k 8] [--prompts 32] [--hidden 256] [--layers 4] [--device cpu|cuda] [--dtype float32]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "io/atomic_file.hpp"
#include "model/load.hpp"
#include "train/preference_trainer.hpp"
#include "train/train_config.hpp"

int main(int argc, char** argv) {
  int64_t K = 8, prompts = 32, hidden = 256, layers = 4;
  std::string device = "cpu", dtype = "float32";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--k") K = std::stoll(v);
    else if (a == "--prompts") prompts = std::stoll(v);
    else if (a == "--hidden") hidden = std::stoll(v);
    else if (a == "--layers") layers = std::stoll(v);
    else if (a == "--device") device = v;
    else if (a == "--dtype") dtype = v;
  }
  const std::string root = "/tmp/hps_bench_train_cost";
  hps::io::remove_tree(root);
  const std::string model = root + "/model", data = root + "/data.jsonl";
  hps::model::ModelConfig c;
  c.architecture = "Qwen2ForCausalLM";
  c.family = hps::model::Family::qwen2;
  c.vocab_size = 1536, c.hidden_size = hidden, c.intermediate_size = 4 * hidden, c.num_layers = layers;
  c.num_heads = hidden / 64, c.num_kv_heads = std::max<int64_t>(1, hidden / 128), c.head_dim = 64;
  c.qkv_bias = true, c.tie_word_embeddings = true;
  c.window.assign(static_cast<size_t>(layers), 0);
  const nlohmann::json cfg = {{"architectures", {"Qwen2ForCausalLM"}}, {"vocab_size", c.vocab_size},
                              {"hidden_size", hidden}, {"intermediate_size", 4 * hidden}, {"num_hidden_layers", layers},
                              {"num_attention_heads", c.num_heads}, {"num_key_value_heads", c.num_kv_heads},
                              {"tie_word_embeddings", true}, {"pad_token_id", 0}};
  hps::model::save_model(hps::model::random_model(c, at::kCPU, at::kFloat, 0.02, 1), cfg, model);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    hps::io::copy_file(std::string("tests/fixtures/tokenizers/qwen2/") + f, model + "/" + f);
  {
    std::ofstream out(data);
    for (int64_t p = 0; p < prompts; ++p) {
      nlohmann::json resp = nlohmann::json::array(), rew = nlohmann::json::array();
      for (int64_t k = 0; k < K; ++k) {
        std::string r;
        for (int w = 0; w < 40; ++w) r += "word" + std::to_string((p * 7 + k * 13 + w) % 50) + " ";
        resp.push_back(r), rew.push_back(static_cast<double>(K - k));
      }
      out << nlohmann::json{{"prompt", "Prompt number " + std::to_string(p) + ": please answer at some length."},
                            {"responses", resp}, {"rewards", rew}}.dump() << "\n";
    }
  }
  std::printf("setting: %lld prompts x K=%lld responses (~%d tokens each), %lld-layer hidden-%lld model, %s %s, 1 epoch, batch 4 prompts\n",
              static_cast<long long>(prompts), static_cast<long long>(K), 60, static_cast<long long>(layers),
              static_cast<long long>(hidden), device.c_str(), dtype.c_str());
  for (const char* pref : {"bt", "pl", "hps", "hps_full"}) {
    hps::Config conf = hps::Config::from_string("", "bench");
    for (const std::string& kv : std::vector<std::string>{"model.path=" + model, "data.path=" + data, "train.out_dir=" + root + "/run_" + pref,
                                 "train.epochs=1", "train.batch_prompts=4", "train.lr=1e-4", "lora.enabled=false",
                                 std::string("loss.preference=") + pref, "model.device=" + device, "model.dtype=" + dtype})
      conf.set_override(kv);
    hps::train::PreferenceTrainer t(hps::train::read_train_config(conf), conf.dump());
    std::ostringstream log;
    const auto t0 = std::chrono::steady_clock::now();
    const auto steps = t.run(false, log);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int64_t forwarded = 0, n = 0;
    for (const auto& st : steps)
      for (const auto& r : st.responses) forwarded += static_cast<int64_t>(r.size()), ++n;
    std::printf("{\"preference\": \"%s\", \"steps\": %zu, \"responses_per_prompt\": %.1f, \"epoch_s\": %.2f}\n", pref,
                steps.size(), static_cast<double>(forwarded) / static_cast<double>(n), s);
  }
  return 0;
}
