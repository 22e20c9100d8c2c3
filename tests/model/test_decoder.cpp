// Decoder behaviour beyond parity: KV cache, gradient checkpointing, the fused log-prob function's
// gradients, LoRA initialization and freezing, config.json and weight validation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"
#include "model/load.hpp"
#include "model/logprobs.hpp"
#include "model/lora.hpp"
#include "model/model_helpers.hpp"

namespace hps::model {
namespace {

using test::expected;
using test::message_of;
using test::model_dir;

// Prefill a left-padded prompt, then decode one token at a time: every step's last hidden state must
// equal the full forward over the whole (left-padded) sequence.
TEST(StateGuard, RestoresTheStateFlagsOnScopeExitAndOnException) {
  Decoder d;
  d.state = {true, true, true};
  {
    StateGuard g(d);
    d.state.lora_enabled = false, d.state.training = false;
  }
  EXPECT_TRUE(d.state.lora_enabled && d.state.training && d.state.grad_checkpointing);
  try {
    StateGuard g(d);
    d.state.lora_enabled = false;
    throw std::runtime_error("a forward failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(d.state.lora_enabled) << "restored although the scope was left by an exception";
}

TEST(KVCache, PrefillPlusStepsEqualsFullForward) {
  for (const std::string arch : {"llama", "qwen2", "mistral"}) {  // mistral: sliding window 5 < length
    Decoder d = load_model(model_dir(arch));
    at::Tensor ids = at::randint(3, 128, {2, 9}, at::kLong);
    at::Tensor mask = at::ones({2, 9}, at::kLong);
    mask.index_put_({1, at::indexing::Slice(0, 2)}, 0);  // row 1 left-padded by 2
    const at::Tensor full = d.hidden_states(ids, mask);  // [2, 9, H]
    KVCache cache = d.make_cache(2, 9);
    const int64_t prompt = 4;
    at::Tensor h = d.hidden_states_cached(ids.narrow(1, 0, prompt), mask.narrow(1, 0, prompt), cache);
    double err = (h - full.narrow(1, 0, prompt)).index({mask.narrow(1, 0, prompt).to(at::kBool)}).abs().max().item<double>();
    for (int64_t t = prompt; t < 9; ++t) {
      at::Tensor step = d.hidden_states_cached(ids.narrow(1, t, 1), mask.narrow(1, t, 1), cache);  // [2, 1, H]
      err = std::max(err, (step.squeeze(1) - full.select(1, t)).abs().max().item<double>());
    }
    EXPECT_LE(err, 1e-5) << arch;
    EXPECT_THAT(message_of<InputError>([&] { d.hidden_states_cached(ids.narrow(1, 0, 1), mask.narrow(1, 0, 1), cache); }),
                ::testing::HasSubstr("KV cache full"));
  }
}

std::vector<at::Tensor> grads_of(Decoder& d, const std::map<std::string, at::Tensor>& e) {
  for (auto& t : d.trainable_parameters()) t.mutable_grad() = at::Tensor();
  SeqLogprobs lp = sequence_logprobs(d, e.at("input_ids"), e.at("attention_mask"), e.at("response_mask"));
  lp.sum.sum().backward();
  std::vector<at::Tensor> g;
  for (auto& t : d.trainable_parameters()) g.push_back(t.grad().clone());
  return g;
}

TEST(GradientCheckpointing, SameGradientsAsPlainBackward) {
  const auto e = expected("qwen2");
  Decoder d = load_model(model_dir("qwen2"));
  d.set_requires_grad(true, true);
  auto plain = grads_of(d, e);
  d.state.grad_checkpointing = true;
  auto ckpt = grads_of(d, e);
  ASSERT_EQ(plain.size(), ckpt.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_LE((plain[i] - ckpt[i]).abs().max().item<double>(), 1e-6) << i;
}

TEST(GradientCheckpointing, LoraDropoutMaskIsReplayed) {
  const auto e = expected("llama-lora");
  Decoder d = load_model(model_dir("llama"));
  load_lora(d, model_dir("llama-lora"));  // dropout 0.1
  d.set_requires_grad(false, true);
  d.state.training = true;
  at::manual_seed(5);
  auto plain = grads_of(d, e);
  d.state.grad_checkpointing = true;
  at::manual_seed(5);
  auto ckpt = grads_of(d, e);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_LE((plain[i] - ckpt[i]).abs().max().item<double>(), 1e-6) << i;
}

TEST(FusedLogprob, ValuesAndGradientsEqualFullLogSoftmax) {
  at::manual_seed(0);
  at::Tensor h = at::randn({13, 8}, at::kDouble).requires_grad_(true);
  at::Tensor w = at::randn({21, 8}, at::kDouble).requires_grad_(true);
  at::Tensor tgt = at::randint(0, 21, {13}, at::kLong);
  at::Tensor g = at::randn({13}, at::kDouble);
  at::Tensor ref = at::log_softmax(at::matmul(h, w.t()), 1).gather(1, tgt.unsqueeze(1)).squeeze(1);
  ref.backward(g);
  const at::Tensor gh = h.grad().clone(), gw = w.grad().clone();
  for (int64_t chunk : {1, 4, 13, 100}) {
    h.mutable_grad() = at::Tensor();
    w.mutable_grad() = at::Tensor();
    at::Tensor got = linear_log_softmax_gather(h, w, tgt, chunk);
    EXPECT_LE((got - ref).abs().max().item<double>(), 1e-12) << chunk;
    got.backward(g);
    EXPECT_LE((h.grad() - gh).abs().max().item<double>(), 1e-12) << chunk;
    EXPECT_LE((w.grad() - gw).abs().max().item<double>(), 1e-12) << chunk;
  }
}

TEST(FusedLogprob, ModelPathEqualsLogitsPathWithGradients) {
  const auto e = expected("llama");
  Decoder d = load_model(model_dir("llama"));
  d.set_requires_grad(true, true);
  auto fused = grads_of(d, e);
  for (auto& t : d.trainable_parameters()) t.mutable_grad() = at::Tensor();
  at::Tensor logits = d.logits(e.at("input_ids"), e.at("attention_mask"));
  sequence_logprobs_from_logits(logits, e.at("input_ids"), e.at("response_mask")).sum.sum().backward();
  auto params = d.trainable_parameters();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_LE((params[i].grad() - fused[i]).abs().max().item<double>(), 1e-5) << i;
}

TEST(Lora, FreshAdapterLeavesModelUnchangedAndOnlyAdaptersTrain) {
  const auto e = expected("llama");
  Decoder d = load_model(model_dir("llama"));
  const at::Tensor before = d.logits(e.at("input_ids"), e.at("attention_mask"));
  LoraConfig cfg;
  cfg.rank = 2;
  cfg.targets = {"q_proj", "down_proj"};
  add_lora(d, cfg, 1);
  EXPECT_TRUE(at::equal(d.logits(e.at("input_ids"), e.at("attention_mask")), before)) << "B = 0 at init";
  auto params = d.trainable_parameters();
  EXPECT_EQ(params.size(), 2u * 2u * 2u);  // 2 layers × 2 modules × (A, B)
  EXPECT_EQ(d.num_parameters(true) - d.num_parameters(false),
            2 * (2 * (32 + 32) + 2 * (64 + 32)));  // per layer: q (in 32, out 32), down (in 64, out 32)
  EXPECT_THAT(message_of<ConfigError>([&] {
                LoraConfig bad;
                bad.targets = {"qkv"};
                add_lora(d, bad);
              }),
              ::testing::HasSubstr("unknown module 'qkv'"));
}

TEST(Lora, RejectsAdaptersItCannotApplyFaithfully) {
  test::TempDir dir;
  auto cfg = io::read_json_file(model_dir("llama-lora") + "/adapter_config.json");
  io::copy_file(model_dir("llama-lora") + "/adapter_model.safetensors", dir.str("adapter_model.safetensors"));
  cfg["use_dora"] = true;
  io::write_json_file(dir.str("adapter_config.json"), cfg);
  Decoder d = load_model(model_dir("llama"));
  EXPECT_THAT(message_of<InputError>([&] { load_lora(d, dir.str()); }), ::testing::HasSubstr("'use_dora'"));
  cfg["use_dora"] = false;
  cfg["r"] = 8;
  io::write_json_file(dir.str("adapter_config.json"), cfg);
  EXPECT_THAT(message_of<InputError>([&] { load_lora(d, dir.str()); }), ::testing::HasSubstr("do not fit rank 8"));
  // An adapter for another base model (mistral's head_dim 16 makes q_proj 64 wide, not 32).
  Decoder q = load_model(model_dir("mistral"));
  EXPECT_THAT(message_of<InputError>([&] { load_lora(q, model_dir("llama-lora")); }),
              ::testing::HasSubstr("do not fit rank"));
  // Wrong JSON types are named (nlohmann's value() threw an unnamed type_error.302).
  for (const auto& [key, bad] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"use_rslora", "yes"}, {"use_dora", 1}, {"peft_type", 3}, {"lora_bias", nlohmann::json::array()}}) {
    auto c = io::read_json_file(model_dir("llama-lora") + "/adapter_config.json");
    c[key] = bad;
    io::write_json_file(dir.str("adapter_config.json"), c);
    EXPECT_THAT(message_of<InputError>([&] { load_lora(d, dir.str()); }),
                ::testing::HasSubstr("adapter_config.json: field '" + key + "': wrong type, found " + bad.dump()));
  }
}

TEST(Lora, TargetModulesAsRegexOrAllLinearLoadTheSameAdapter) {
  const auto e = expected("llama-lora");
  test::TempDir dir;
  io::copy_file(model_dir("llama-lora") + "/adapter_model.safetensors", dir.str("adapter_model.safetensors"));
  auto cfg = io::read_json_file(model_dir("llama-lora") + "/adapter_config.json");
  for (const char* form : {R"(model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj)", "all-linear"}) {
    cfg["target_modules"] = form;
    io::write_json_file(dir.str("adapter_config.json"), cfg);
    Decoder d = load_model(model_dir("llama"));
    LoraConfig lc = load_lora(d, dir.str());
    EXPECT_LE(test::max_err_on_real(d.logits(e.at("input_ids"), e.at("attention_mask")), e.at("logits"),
                                    e.at("attention_mask")),
              1e-4)
        << form;
    test::TempDir out;  // the form survives a save
    save_lora(d, lc, out.str());
    EXPECT_EQ(io::read_json_file(out.str("adapter_config.json"))["target_modules"].is_string(),
              lc.targets.empty()) << form;
  }
  cfg["target_modules"] = "(unclosed";
  io::write_json_file(dir.str("adapter_config.json"), cfg);
  Decoder d = load_model(model_dir("llama"));
  EXPECT_THAT(message_of<InputError>([&] { load_lora(d, dir.str()); }), ::testing::HasSubstr("regex is invalid"));
}

nlohmann::json llama_config() { return io::read_json_file(model_dir("llama") + "/config.json"); }

std::string config_error(const nlohmann::json& j) {
  return message_of<InputError>([&] { parse_model_config(j, "config.json"); });
}

TEST(ModelConfig, ReadsOldAndNewRopeStyles) {
  auto j = llama_config();
  ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.rope.type, RopeType::llama3);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 16);
  j.erase("rope_parameters");
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.rope.theta, 500000.0);
  EXPECT_EQ(c.rope.factor, 32.0);
  j.erase("rope_scaling");
  c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.rope.type, RopeType::default_);
}

TEST(ModelConfig, RejectsWhatItCannotComputeFaithfully) {
  auto j = llama_config();
  j["architectures"] = {"GPT2LMHeadModel"};
  EXPECT_THAT(config_error(j), ::testing::HasSubstr("unsupported architecture 'GPT2LMHeadModel'"));
  j = llama_config();
  j["rope_parameters"]["rope_type"] = "yarn";
  EXPECT_THAT(config_error(j), ::testing::HasSubstr("rope type 'yarn' is not supported"));
  j = llama_config();
  j["num_key_value_heads"] = 3;
  EXPECT_THAT(config_error(j), ::testing::HasSubstr("does not divide num_attention_heads"));
  j = llama_config();
  j["hidden_act"] = "gelu";
  EXPECT_THAT(config_error(j), ::testing::HasSubstr("only silu"));
  j = llama_config();
  j.erase("hidden_size");
  EXPECT_THAT(config_error(j), ::testing::HasSubstr("'hidden_size': required integer is missing"));
  j = llama_config();
  j["vocab_size"] = "128";
  EXPECT_THAT(config_error(j), ::testing::HasSubstr("'vocab_size': expected an integer"));
}

// A row longer than the trained context is refused before it runs (a 100k-token row ran for minutes).
TEST(Decoder, PositionsBeyondTheTrainedContextAreANamedError) {
  const Decoder d = load_model(model_dir("llama"));  // max_position_embeddings 64
  const at::Tensor ok = at::zeros({1, 64}, at::kLong), long_row = at::zeros({1, 65}, at::kLong);
  EXPECT_EQ(d.hidden_states(ok, at::ones_like(ok)).size(1), 64);
  EXPECT_THAT(message_of<InputError>([&] { d.hidden_states(long_row, at::ones_like(long_row)); }),
              ::testing::HasSubstr("reaches position 64, beyond the model's context (max_position_embeddings = 64"));
  EXPECT_THAT(message_of<InputError>([&] { d.make_cache(2, 65); }),
              ::testing::HasSubstr("KV cache of 65 positions (prompt + new tokens) exceeds the model's context"));
}

// Sizes are bounded before anything is allocated for them, numbers are finite and positive, special ids index
// the vocabulary, and wrong JSON types are named errors (not nlohmann's type_error).
TEST(ModelConfig, SizesNumbersAndSpecialIdsAreChecked) {
  const std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>> cases = {
      {[](auto& j) { j["num_hidden_layers"] = 200000000; }, "'num_hidden_layers': must be in [1, 4096], found 200000000"},
      {[](auto& j) { j["vocab_size"] = int64_t{1} << 40; }, "'vocab_size': must be in [1, 16777216]"},
      {[](auto& j) { j["rms_norm_eps"] = -1e-6; }, "'rms_norm_eps': must be a finite number > 0"},
      {[](auto& j) { j["rope_parameters"]["rope_theta"] = 0; }, "'rope_theta': must be a finite number > 0"},
      {[](auto& j) { j["rope_parameters"]["original_max_position_embeddings"] = "16"; },
       "needs original_max_position_embeddings, a positive integer"},
      {[](auto& j) { j["pad_token_id"] = 128; }, "'pad_token_id': a token id must be an integer in [0, vocab_size = 128), found 128"},
      {[](auto& j) { j["bos_token_id"] = -1; }, "'bos_token_id': a token id must be an integer in [0, vocab_size = 128), found -1"},
      {[](auto& j) { j["eos_token_id"] = {2, "x"}; }, "'eos_token_id': a token id must be an integer in [0, vocab_size = 128), found \"x\""},
  };
  for (const auto& [edit, expected] : cases) {
    auto j = llama_config();
    edit(j);
    EXPECT_THAT(config_error(j), ::testing::HasSubstr(expected));
  }
  auto j = llama_config();
  j["eos_token_id"] = {2, 3};
  j["pad_token_id"] = nullptr;
  EXPECT_EQ(parse_model_config(j, "config.json").eos_token_ids, (std::vector<int64_t>{2, 3}));
}

TEST(ModelConfig, Qwen2SlidingWindowLayers) {
  auto j = io::read_json_file(model_dir("qwen2") + "/config.json");
  j["use_sliding_window"] = true;
  j["sliding_window"] = 4;
  j["layer_types"] = {"full_attention", "sliding_attention"};
  ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.window, (std::vector<int64_t>{0, 4}));
}

TEST(LoadModel, WrongShapesMissingAndExtraTensorsAreReported) {
  test::TempDir dir;
  auto cfg = llama_config();
  Decoder d = load_model(model_dir("llama"));
  // Shape: config says 4 layers of a different width? Use a smaller vocab than the weights.
  cfg["vocab_size"] = 100;
  io::write_json_file(dir.str("config.json"), cfg);
  io::copy_file(model_dir("llama") + "/model.safetensors", dir.str("model.safetensors"));
  EXPECT_THAT(message_of<InputError>([&] { load_model(dir.str()); }),
              ::testing::HasSubstr("'model.embed_tokens.weight' has shape [128, 32], config.json implies [100, 32]"));
  cfg["vocab_size"] = 128;
  cfg["num_hidden_layers"] = 3;
  io::write_json_file(dir.str("config.json"), cfg);
  EXPECT_THAT(message_of<InputError>([&] { load_model(dir.str()); }),
              ::testing::HasSubstr("lacks tensors LlamaForCausalLM needs: model.layers.2."));
  cfg["num_hidden_layers"] = 1;
  io::write_json_file(dir.str("config.json"), cfg);
  EXPECT_THAT(message_of<InputError>([&] { load_model(dir.str()); }),
              ::testing::HasSubstr("tensor 'model.layers.1."));
}

TEST(Decoder, RewardScoresSkipTrailingPadIdsAsTransformers) {
  // pad_token_id is 0 in the fixtures. A row ending in a real token with id 0 is scored on the token before
  // it (transformers' rule), which equals scoring the row without that token.
  Decoder d = load_model(model_dir("llama-reward"));
  at::Tensor ids = at::tensor({5, 9, 17, 33, 0}, at::kLong).view({1, 5});
  at::Tensor with_pad_id = d.scores(ids, at::ones_like(ids));
  at::Tensor cut = d.scores(ids.narrow(1, 0, 4), at::ones({1, 4}, at::kLong));
  EXPECT_LE((with_pad_id - cut).abs().max().item<double>(), 1e-6);
}

TEST(Decoder, RejectsOutOfRangeTokenIds) {
  Decoder d = load_model(model_dir("qwen2"));
  at::Tensor ids = at::full({1, 3}, 128, at::kLong);
  EXPECT_THAT(message_of<InputError>([&] { d.logits(ids, at::ones_like(ids)); }),
              ::testing::HasSubstr("token ids must be in [0, 128), found 128"));
}

}  // namespace
}  // namespace hps::model
