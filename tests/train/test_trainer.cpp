// hps train on a tiny model built in the test: slot selection reads exactly what the loss reads, every
// objective × preference model learns its training pairs, resume is exact, incomplete checkpoints are
// ignored, a non-finite step changes nothing, and an incompatible resume names the field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <cstdio>
#include <sstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"
#include "data/batching.hpp"
#include "model/load.hpp"
#include "model/score_records.hpp"
#include "text/chat.hpp"
#include "prefs/losses.hpp"
#include "test_util.hpp"
#include "train/preference_trainer.hpp"
#include "train/run_checkpoint.hpp"

namespace hps::train {
namespace {

using test::message_of;

// A tiny Qwen2-style model with the qwen2 fixture tokenizer, saved as an HF folder, and a ranked dataset.
struct World {
  test::TempDir dir;
  std::string model, data;
  World() {
    model = dir.str("model");
    const auto tok_dir = test::fixtures_dir() + "/tokenizers/qwen2";
    model::ModelConfig c;
    c.architecture = "Qwen2ForCausalLM";
    c.family = model::Family::qwen2;
    c.vocab_size = 1536, c.hidden_size = 32, c.intermediate_size = 64, c.num_layers = 1;
    c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 8, c.qkv_bias = true, c.tie_word_embeddings = true;
    c.window = {0};
    const nlohmann::json cfg = {{"architectures", {"Qwen2ForCausalLM"}}, {"model_type", "qwen2"}, {"vocab_size", 1536},
                                {"hidden_size", 32}, {"intermediate_size", 64}, {"num_hidden_layers", 1},
                                {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"tie_word_embeddings", true},
                                {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}, {"pad_token_id", 0}};
    model::save_model(model::random_model(c, at::kCPU, at::kFloat, 0.1, 5), cfg, model);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) io::copy_file(tok_dir + "/" + f, model + "/" + f);
    // 6 prompts × 4 responses; the better responses share words, so a preference is learnable.
    data = dir.str("data.jsonl");
    std::ofstream out(data);
    const char* good[] = {"Sure, here is a kind and careful answer.", "Happy to help with that, step by step.",
                          "A clear answer: yes, and here is why."};
    const char* bad[] = {"No.", "Whatever, figure it out.", "I refuse, go away."};
    for (int p = 0; p < 6; ++p)
      out << nlohmann::json{{"prompt", "Question number " + std::to_string(p) + "?"},
                            {"responses", {good[p % 3], good[(p + 1) % 3], bad[p % 3], bad[(p + 2) % 3]}},
                            {"rewards", {3.0, 2.0, -1.0, -2.0}}}
                 .dump()
          << "\n";
  }
  // Base config plus `key=value` overrides.
  Config config(const std::string& out, std::initializer_list<std::string> overrides = {}) const {
    Config c = Config::from_string("[model]\npath = '" + model + "'\n[data]\npath = '" + data + "'\n[train]\nout_dir = '" +
                                       out + "'\nmax_steps = 6\nbatch_prompts = 3\nlr = 0.01\nwarmup_ratio = 0.0\n",
                                   "test");
    for (const auto& kv : overrides) c.set_override(kv);
    return c;
  }
};

std::vector<StepLog> train(const World& w, Config cfg, bool resume = false, std::ostream* log_to = nullptr) {
  std::ostringstream log;
  PreferenceTrainer t(read_train_config(cfg), cfg.dump());
  return t.run(resume, log_to ? *log_to : log);
}

TEST(SlotSelection, TheLossReadsOnlyTheSelectedSlots) {
  // For every cell that forwards two responses: zeroing every other slot leaves loss and gradient unchanged.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  data::PreferenceRecord r;
  r.responses = {"a", "b", "c", "d", "e"};
  r.rewards = {0.5, 2.0, -1.0, 1.0, 0.7};
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  int checked = 0;
  for (auto pref : {prefs::Preference::bt, prefs::Preference::hps})
    for (auto obj : {prefs::Objective::dpo, prefs::Objective::ipo, prefs::Objective::exo, prefs::Objective::sppo,
                     prefs::Objective::nca, prefs::Objective::simpo, prefs::Objective::rdpo})
      for (auto rule : {prefs::PairRule::max_min, prefs::PairRule::max_random, prefs::PairRule::max_max, prefs::PairRule::random}) {
        if (pref == prefs::Preference::hps && rule != prefs::PairRule::max_min) continue;
        prefs::LossConfig lc;
        lc.preference = pref, lc.objective = obj, lc.pair_rule = rule, lc.gamma = 1.5;
        at::Tensor u = prefs::draw_uniforms(1, gen);
        const auto slots = prefs::read_slots(select_record(r, lc, u), 0);
        ASSERT_EQ(slots.size(), 2u);
        at::Tensor logp = at::randn({1, 5}, opts) - 20, ref = at::randn({1, 5}, opts) - 20;
        at::Tensor len = at::randint(1, 9, {1, 5}, opts), reward = at::tensor(r.rewards, opts).view({1, 5});
        at::Tensor keep = at::zeros({1, 5}, opts);
        for (int64_t s : slots) keep[0][s] = 1;
        const double full = prefs::preference_loss({logp, ref, len, reward, {}, {}}, lc, u).loss.item<double>();
        const double masked = prefs::preference_loss({logp * keep, ref * keep, len, reward, {}, {}}, lc, u).loss.item<double>();
        EXPECT_NEAR(full, masked, 1e-12) << prefs::to_string(pref) << " " << prefs::to_string(obj) << " " << prefs::to_string(rule);
        ++checked;
      }
  EXPECT_EQ(checked, 35);
}

// Pairwise reward accuracy on the training records: over every pair of responses with different rewards,
// the share the model's implicit reward orders correctly (β·log π/π_ref; SimPO: length-normalized log π).
// Chance is 0.5; the untrained policy (= reference) scores 0 (all ties).
double pairwise_accuracy(const World& w, const std::string& policy_dir, bool simpo) {
  const auto tok = text::Tokenizer::from_dir(w.model);
  const auto d = data::read_dataset(w.data);
  const data::Encoder enc(tok, text::detect_chat_template(tok.config().chat_template), {});
  const auto recs = data::tokenize_dataset(d, enc);
  const auto pol = model::score_records(model::load_model(policy_dir), recs, 8);
  const auto ref = model::score_records(model::load_model(w.model), recs, 8);
  int64_t right = 0, pairs = 0;
  for (size_t r = 0; r < recs.size(); ++r) {
    const auto& rw = d.records[r].rewards;
    auto score = [&](size_t k) {
      return simpo ? pol[r].logp[k] / static_cast<double>(pol[r].tokens[k]) : pol[r].logp[k] - ref[r].logp[k];
    };
    for (size_t i = 0; i < rw.size(); ++i)
      for (size_t j = 0; j < rw.size(); ++j)
        if (rw[i] > rw[j]) ++pairs, right += score(i) > score(j);
  }
  return static_cast<double>(right) / static_cast<double>(pairs);
}

TEST(Trainer, EveryObjectiveAndPreferenceLearnsItsTrainingPairs) {
  World w;
  const double before = pairwise_accuracy(w, w.model, false);
  EXPECT_EQ(before, 0.0) << "policy = reference: every pair ties";
  for (const char* pref : {"bt", "pl", "hps", "hps_full"})
    for (const char* obj : {"dpo", "ipo", "exo", "sppo", "nca", "simpo", "rdpo"}) {
      test::TempDir out;
      Config c = w.config(out.str(), {"train.max_steps=24", "lora.enabled=false", std::string("loss.preference=") + pref,
                                      std::string("loss.objective=") + obj});
      std::ostringstream log;
      PreferenceTrainer t(read_train_config(c), c.dump());
      const auto steps = t.run(false, log);
      ASSERT_EQ(steps.size(), 24u);
      for (const auto& s : steps) EXPECT_FALSE(s.skipped) << pref << " × " << obj;
      // Responses forwarded per prompt: 2 for BT / sampled HPS, all 4 for PL / HPS-full.
      const size_t want = std::string(pref) == "pl" || std::string(pref) == "hps_full" ? 4 : 2;
      EXPECT_EQ(steps[0].responses[0].size(), want) << pref;
      const double acc = pairwise_accuracy(w, checkpoint_path(out.str(), 24) + "/model", std::string(obj) == "simpo");
      EXPECT_GE(acc, 0.75) << pref << " × " << obj << ": pairwise reward accuracy on the training records";
      std::printf("%-9s %-6s pairwise accuracy %.3f\n", pref, obj, acc);
    }
}

TEST(Trainer, ResumeIsExactAndIgnoresIncompleteCheckpoints) {
  World w;
  test::TempDir a, b;
  const auto straight = train(w, w.config(a.str(), {"train.save_every=2", "loss.preference=hps", "lora.dropout=0.1"}));
  const auto first =
      train(w, w.config(b.str(), {"train.save_every=2", "loss.preference=hps", "lora.dropout=0.1", "train.stop_after=3"}));
  ASSERT_EQ(first.size(), 3u);
  // A crash during a later checkpoint write leaves a folder without its COMPLETE marker: ignored.
  io::make_dirs(checkpoint_path(b.str(), 5));
  io::save_safetensors(checkpoint_path(b.str(), 5) + "/optimizer.safetensors", {{"junk", at::zeros({1})}});
  io::make_dirs(checkpoint_path(b.str(), 4) + ".tmp");
  EXPECT_EQ(*latest_checkpoint(b.str()), checkpoint_path(b.str(), 3));
  const auto rest = train(w, w.config(b.str(), {"train.save_every=2", "loss.preference=hps", "lora.dropout=0.1"}), true);
  ASSERT_EQ(rest.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rest[i].step, straight[3 + i].step);
    EXPECT_EQ(rest[i].loss, straight[3 + i].loss) << "step " << rest[i].step;
    EXPECT_EQ(rest[i].responses, straight[3 + i].responses);
  }
  EXPECT_EQ(io::read_file(checkpoint_path(a.str(), 6) + "/adapter/adapter_model.safetensors"),
            io::read_file(checkpoint_path(b.str(), 6) + "/adapter/adapter_model.safetensors"));
  EXPECT_FALSE(io::dir_exists(checkpoint_path(b.str(), 4) + ".tmp")) << "leftovers of interrupted writes are pruned";
  // keep_last = 2: only the two newest complete checkpoints remain.
  EXPECT_EQ(complete_checkpoints(b.str()).size(), 2u);
}

TEST(Trainer, ReferenceCacheGivesTheSameStepsAndIsRebuiltWhenInputsChange) {
  World w;
  test::TempDir a, b;
  const auto plain = train(w, w.config(a.str(), {"loss.preference=hps", "data.eval_fraction=0.34", "train.ref_cache=false"}));
  std::ostringstream log;
  Config c = w.config(b.str(), {"loss.preference=hps", "data.eval_fraction=0.34", "train.ref_cache=true"});
  const auto cached = PreferenceTrainer(read_train_config(c), c.dump()).run(false, log);
  EXPECT_THAT(log.str(), ::testing::HasSubstr("reference log-prob cache: building"));
  ASSERT_EQ(plain.size(), cached.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_NEAR(plain[i].loss, cached[i].loss, 1e-5) << "step " << plain[i].step;
    EXPECT_EQ(plain[i].responses, cached[i].responses);
  }
  std::ostringstream again;
  PreferenceTrainer(read_train_config(c), c.dump()).run(false, again);
  EXPECT_THAT(again.str(), ::testing::HasSubstr("reference log-prob cache: hit (6 records)"));
  // Any change to an input the values depend on is a miss: here the data file.
  std::ofstream(w.data, std::ios::app) << nlohmann::json{{"prompt", "extra"}, {"responses", {"a b", "c"}}, {"rewards", {1, 0}}}.dump() << "\n";
  std::ostringstream stale;
  PreferenceTrainer(read_train_config(c), c.dump()).run(false, stale);
  EXPECT_THAT(stale.str(), ::testing::HasSubstr("stale"));
}

TEST(Trainer, ReferenceCacheByDefaultWhenItSavesReferenceForwards) {
  // 6 prompts × 4 responses: the cache scores 24 responses once. BT and sampled HPS forward 2 per prompt read,
  // PL all 4: 6 steps of 3 prompts read 18 (36 forwards: on), 2 steps read 6 (12 forwards: off; PL 24: on).
  World w;
  struct Case {
    std::vector<std::string> overrides;
    std::string line;  // "" = no decision logged
    bool built;
  };
  const std::vector<Case> cases = {
      {{}, "auto): on: 24 responses scored once instead of 36 reference forwards", true},
      {{"train.max_steps=2"}, "auto): off: 24 responses scored once vs 12 reference forwards", false},
      {{"train.max_steps=2", "loss.preference=pl"}, "auto): on: 24 responses scored once instead of 24", true},
      {{"train.ref_cache=false"}, "", false},
      {{"train.max_steps=2", "train.ref_cache=true"}, "", true}};
  for (const auto& c : cases) {
    test::TempDir out;
    Config cfg = w.config(out.str());
    for (const auto& kv : c.overrides) cfg.set_override(kv);
    std::ostringstream log;
    PreferenceTrainer(read_train_config(cfg), cfg.dump()).run(false, log);
    const std::string what = ::testing::PrintToString(c.overrides);
    if (c.line.empty()) EXPECT_THAT(log.str(), ::testing::Not(::testing::HasSubstr("train.ref_cache = auto"))) << what;
    else EXPECT_THAT(log.str(), ::testing::HasSubstr("train.ref_cache = " + c.line)) << what;
    EXPECT_EQ(io::file_exists(out.str() + "/ref_logps.safetensors"), c.built) << what;
    if (c.built) EXPECT_THAT(log.str(), ::testing::HasSubstr("reference log-prob cache: built 24 responses of 6 records in"));
  }
  // SFT has no reference: auto is off without a word; asking for the cache is an error.
  test::TempDir sft;
  Config c = w.config(sft.str(), {"train.max_steps=1"});
  std::ostringstream log;
  PreferenceTrainer(read_train_config(c, Task::sft), c.dump()).run(false, log);
  EXPECT_THAT(log.str(), ::testing::Not(::testing::HasSubstr("reference log-prob cache")));
  c.set_override("train.ref_cache=true");
  EXPECT_THROW(read_train_config(c, Task::sft), ConfigError);
  c.set_override("train.ref_cache=sometimes");
  try {
    read_train_config(c);
    ADD_FAILURE() << "no error for train.ref_cache = sometimes";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("train.ref_cache must be true, false or \"auto\", found \"sometimes\""));
  }
}

// Every checkpoint carries what transformers needs to load and prompt it, and a model card saying what it is.
TEST(Trainer, CheckpointsCarryTokenizerFilesChatTemplateGenerationConfigAndAModelCard) {
  World w;
  io::write_file_atomic(w.model + "/generation_config.json", [](std::ostream& o) { o << "{\"max_new_tokens\": 7}\n"; });
  const std::string chatml = io::read_json_file(w.model + "/tokenizer_config.json")["chat_template"];
  io::write_file_atomic(w.model + "/chat_template.jinja", [&](std::ostream& o) { o << chatml; });
  for (const bool lora : {true, false}) {
    test::TempDir out;
    train(w, w.config(out.str(), {"train.stop_after=1", lora ? "lora.enabled=true" : "lora.enabled=false"}));
    const std::string dir = checkpoint_path(out.str(), 1) + (lora ? "/adapter" : "/model");
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "README.md"})
      EXPECT_TRUE(io::file_exists(dir + "/" + f)) << dir << " lacks " << f;
    EXPECT_EQ(io::file_exists(dir + "/generation_config.json"), !lora) << "a full model carries its generation config";
    const std::string card = io::read_file(dir + "/README.md");
    EXPECT_THAT(card, ::testing::HasSubstr("base_model: '" + w.model + "'"));
    EXPECT_THAT(card, ::testing::HasSubstr(lora ? "library_name: peft" : "library_name: transformers"));
    EXPECT_THAT(card, ::testing::HasSubstr("Method: hps × dpo"));
    EXPECT_THAT(card, ::testing::HasSubstr("| data | `" + w.data + "` (format ranked) |"));
    EXPECT_THAT(card, ::testing::HasSubstr("trained with hps " HPS_VERSION));
  }
}

// --print-config: every key with its effective value, as TOML that reads back to the same settings.
TEST(TrainConfig, PrintedConfigReadsBackToTheSameSettings) {
  World w;
  for (const Task task : {Task::preference, Task::sft, Task::reward}) {
    Config c = w.config("out", {"train.lr=0.0003", "loss.beta=0.25", "lora.targets=q_proj,v_proj", "data.format=text_pair",
                                "train.ref_cache=false", "gamma.end=3.5"});
    if (task == Task::reward) c.set_override("loss.preference=bt"), c.set_override("lora.enabled=false");
    std::ostringstream first, second;
    write_train_config(read_train_config(c, task), first);
    write_train_config(read_train_config(Config::from_string(first.str(), "printed"), task), second);
    EXPECT_EQ(first.str(), second.str()) << to_string(task);
    EXPECT_THAT(first.str(), ::testing::HasSubstr("\nlr = 0.0003\n"));
    EXPECT_THAT(first.str(), ::testing::HasSubstr("\ntargets = 'q_proj,v_proj'\n"));
    EXPECT_THAT(first.str(), ::testing::HasSubstr("\nref_cache = false\n"));
    EXPECT_THAT(first.str(), ::testing::HasSubstr("\nkeep_last = 2\n")) << "defaults are printed too";
  }
}

TEST(TrainConfig, NumericSettingsAreFiniteAndInRange) {
  // Each was accepted before and trained with it (NaN lr: a NaN adapter and exit 0; an empty out_dir: the root).
  const World w;
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"train.lr=inf", "train.lr must be > 0 and finite, found inf"},
      {"train.beta1=1.0", "train.beta1 must be in [0, 1), found 1"},
      {"train.beta2=-0.1", "train.beta2 must be in [0, 1), found -0.1"},
      {"train.eps=0.0", "train.eps must be > 0 and finite, found 0"},
      {"train.weight_decay=-1.0", "train.weight_decay must be ≥ 0 and finite, found -1"},
      {"train.warmup_ratio=1.5", "train.warmup_ratio must be a probability in [0, 1], found 1.5"},
      {"train.warmup_ratio=nan", "train.warmup_ratio must be a probability in [0, 1], found nan"},
      {"train.max_grad_norm=-1.0", "train.max_grad_norm must be ≥ 0 and finite, found -1"},
      {"train.out_dir=''", "train.out_dir is required"},
      {"train.epochs=-1", "train.epochs must be ≥ 0, found -1"},
      {"train.save_every=-2", "train.save_every must be ≥ 0"},
      {"train.max_tokens_per_micro_batch=-5", "train.max_tokens_per_micro_batch must be >= 0"},
      {"train.ddp_bucket_cap_mb=-1.0", "train.ddp_bucket_cap_mb must be ≥ 0 and finite, found -1"},
      {"train.ddp_bucket_cap_mb=inf", "train.ddp_bucket_cap_mb must be ≥ 0 and finite, found inf"}};
  for (const auto& [kv, want] : bad) {
    Config c = w.config("/tmp/unused", {kv});
    EXPECT_THAT(message_of<ConfigError>([&] { read_train_config(c); }), ::testing::HasSubstr(want)) << kv;
  }
  // epochs × steps per epoch beyond int64: an error before anything is trained.
  test::TempDir out;
  Config c = w.config(out.str(), {"train.max_steps=0", "train.epochs=9223372036854775807"});
  EXPECT_THAT(message_of<ConfigError>([&] { PreferenceTrainer(read_train_config(c), c.dump()); }),
              ::testing::HasSubstr("overflows the step count"));
  // A LoRA rank beyond the model's projections: refused before allocating (it ran the machine out of memory).
  Config r = w.config(out.str(), {"lora.rank=100000000"});
  EXPECT_THAT(message_of<ConfigError>([&] { PreferenceTrainer(read_train_config(r), r.dump()); }),
              ::testing::HasSubstr("lora.rank = 100000000 exceeds"));
}

TEST(Trainer, GradientAccumulationEqualsTheLargerBatch) {
  // 2 micro-batches of 3 prompts, each loss halved, = one batch of 6 (the loss is a mean over prompts, the
  // loader order and the per-prompt draws are the same), so the weights after each step agree.
  World w;
  test::TempDir a, b;
  train(w, w.config(a.str(), {"train.max_steps=2", "train.batch_prompts=3", "train.grad_accum=2", "lora.dropout=0.0"}));
  train(w, w.config(b.str(), {"train.max_steps=2", "train.batch_prompts=6", "train.grad_accum=1", "lora.dropout=0.0"}));
  auto fa = io::SafetensorsFile::open(checkpoint_path(a.str(), 2) + "/adapter/adapter_model.safetensors");
  auto fb = io::SafetensorsFile::open(checkpoint_path(b.str(), 2) + "/adapter/adapter_model.safetensors");
  ASSERT_EQ(fa.tensors().size(), fb.tensors().size());
  double moved = 0;
  for (const auto& t : fa.tensors()) {
    EXPECT_LE((fa.get(t.name) - fb.get(t.name)).abs().max().item<double>(), 1e-6) << t.name;
    if (t.name.find("lora_B") != std::string::npos) moved += fa.get(t.name).abs().sum().item<double>();
  }
  EXPECT_GT(moved, 0.0) << "the adapters trained";
}

// Rewrites the world's model with a NaN in its final norm: every loss is NaN.
void poison_final_norm(const World& w) {
  const auto j = io::read_json_file(w.model + "/config.json");
  model::Decoder d = model::load_model(w.model);
  d.final_norm[0] = NAN;
  model::save_model(d, j, w.model);
}

TEST(Trainer, AbortsAfterConsecutiveNonFiniteStepsWithoutApplyingThem) {
  World w;
  poison_final_norm(w);
  test::TempDir out;
  std::ostringstream log;
  Config c = w.config(out.str(), {"train.max_bad_steps=2", "lora.enabled=false"});
  PreferenceTrainer t(read_train_config(c), c.dump());
  EXPECT_THAT(message_of<NumericError>([&] { t.run(false, log); }),
              ::testing::HasSubstr("2 consecutive steps had a non-finite loss or gradient"));
  EXPECT_THAT(log.str(), ::testing::HasSubstr("SKIPPED (non-finite)"));
  EXPECT_FALSE(latest_checkpoint(out.str())) << "nothing was saved from a run that never took a step";
}

TEST(Trainer, ARunWhoseEveryStepWasSkippedFailsAndNeverSavesNonFiniteWeights) {
  // Fewer steps than max_bad_steps, all non-finite: it exited 0 before. Full fine-tuning trains the NaN norm
  // itself: its checkpoint is refused; with LoRA the adapter is finite but the run still fails.
  World w;
  poison_final_norm(w);
  for (const bool lora : {false, true}) {
    test::TempDir out;
    std::ostringstream log;
    Config c = w.config(out.str(), {"train.max_steps=2", lora ? "lora.enabled=true" : "lora.enabled=false"});
    PreferenceTrainer t(read_train_config(c), c.dump());
    const std::string msg = message_of<NumericError>([&] { t.run(false, log); });
    if (lora) {
      EXPECT_THAT(msg, ::testing::HasSubstr("all 2 steps of this run had a non-finite loss or gradient"));
    } else {
      EXPECT_THAT(msg, ::testing::HasSubstr("refusing to save checkpoint 2: model.norm.weight holds non-finite values"));
      EXPECT_FALSE(latest_checkpoint(out.str()));
    }
  }
}

TEST(Trainer, AutocastRunsLowPrecisionMatmulsOverFp32Weights) {
  World w;
  test::TempDir a, b;
  const auto fp32 = train(w, w.config(a.str(), {"lora.enabled=false", "train.max_steps=4"}));
  const auto mixed = train(w, w.config(b.str(), {"lora.enabled=false", "train.max_steps=4", "model.autocast=bfloat16",
                                                 "model.grad_checkpointing=true"}));
  double diff = 0;
  for (size_t i = 0; i < fp32.size(); ++i) {
    EXPECT_NEAR(fp32[i].loss, mixed[i].loss, 2e-2) << "step " << fp32[i].step;
    diff += std::abs(fp32[i].loss - mixed[i].loss);
  }
  EXPECT_GT(diff, 0.0) << "autocast changed nothing: it is not active";
  auto f = io::SafetensorsFile::open(checkpoint_path(b.str(), 4) + "/model/model.safetensors");
  EXPECT_EQ(f.info("model.embed_tokens.weight").dtype, "F32") << "master weights stay fp32";
  EXPECT_THAT(message_of<ConfigError>([&] {
                read_train_config(w.config(a.str(), {"model.autocast=bfloat16", "model.dtype=bfloat16"}));
              }),
              ::testing::HasSubstr("needs float32 weights"));
}

TEST(Trainer, IncompatibleResumeNamesTheField) {
  World w;
  test::TempDir out;
  train(w, w.config(out.str(), {"train.stop_after=1"}));
  EXPECT_THAT(message_of<ConfigError>([&] { train(w, w.config(out.str(), {"lora.rank=4"}), true); }),
              ::testing::HasSubstr("lora.rank was 8, now 4"));
}

TEST(Trainer, ResumeChecksLossLoraGammaAndLengthSettings) {
  World w;
  test::TempDir out;
  train(w, w.config(out.str(), {"train.stop_after=1"}));
  for (auto [kv, want] : {std::pair{"lora.alpha=8", "lora.alpha was 16"}, {"lora.dropout=0.1", "lora.dropout was 0.05"},
                          {"lora.rslora=true", "lora.rslora was false"}, {"loss.beta=0.2", "loss.beta was 0.1"},
                          {"loss.ties=by_slot", "loss.ties was \"exclude\""}, {"gamma.start=-3.0", "gamma.start was -5"},
                          {"gamma.schedule=linear", "gamma.schedule was \"stepwise\""},
                          {"data.max_length=600", "data.max_length was 1024"},
                          {"data.max_prompt_length=64", "data.max_prompt_length was 512"}})
    EXPECT_THAT(message_of<ConfigError>([&] { train(w, w.config(out.str(), {kv}), true); }), ::testing::HasSubstr(want))
        << kv;
  // What may change, and is said: the learning rate, its schedule, AdamW's settings, clipping.
  std::ostringstream log;
  EXPECT_NO_THROW(train(w, w.config(out.str(), {"train.lr=0.02", "train.stop_after=2"}), true, &log));
  EXPECT_THAT(log.str(), ::testing::HasSubstr("resuming with train.lr = 0.02 (the checkpoint ran with 0.01)"));
}

// The same paths with other bytes are another run; a checkpoint file changed after its save is damaged;
// a trainer_state.json that does not fit the run is an error — none of them resumes silently.
TEST(Trainer, ResumeRefusesChangedInputsDamagedFilesAndImpossibleSteps) {
  World w;
  test::TempDir out;
  train(w, w.config(out.str(), {"train.stop_after=2", "train.save_every=1"}));
  const std::string ckpt = checkpoint_path(out.str(), 2), opt = ckpt + "/optimizer.safetensors";
  auto resume = [&] { train(w, w.config(out.str()), true); };
  // One bit flipped in the optimizer state.
  const std::string original = io::read_file(opt);
  std::string flipped = original;
  flipped[flipped.size() - 3] ^= 0x10;
  io::write_file_atomic(opt, [&](std::ostream& o) { o << flipped; });
  EXPECT_THAT(message_of<InputError>(resume),
              ::testing::AllOf(::testing::HasSubstr(opt + ": does not match the checksum recorded when it was saved"),
                               ::testing::HasSubstr("remove " + ckpt)));
  io::write_file_atomic(opt, [&](std::ostream& o) { o << original; });
  // New data under the old name (one reward changed), then new base weights.
  const std::string data = io::read_file(w.data);
  std::string edited = data;
  edited.replace(edited.find("-2.0"), 4, "-2.5");
  io::write_file_atomic(w.data, [&](std::ostream& o) { o << edited; });
  EXPECT_THAT(message_of<ConfigError>(resume), ::testing::HasSubstr("the data file " + w.data + " changed since the checkpoint"));
  io::write_file_atomic(w.data, [&](std::ostream& o) { o << data; });
  const std::string weights = io::read_file(w.model + "/model.safetensors");
  std::string other = weights;
  other[other.size() - 1] ^= 0x01;
  io::write_file_atomic(w.model + "/model.safetensors", [&](std::ostream& o) { o << other; });
  EXPECT_THAT(message_of<ConfigError>(resume), ::testing::HasSubstr("the base model in " + w.model + " changed"));
  io::write_file_atomic(w.model + "/model.safetensors", [&](std::ostream& o) { o << weights; });
  // step = 10^12 in trainer_state.json (with a marker that matches, as an edit of both would).
  auto state = io::read_json_file(ckpt + "/trainer_state.json");
  state["step"] = int64_t{1000000000000};
  io::write_json_file(ckpt + "/trainer_state.json", state);
  auto marker = io::read_json_file(ckpt + "/COMPLETE");
  marker["files"]["trainer_state.json"] = io::file_fingerprint(ckpt + "/trainer_state.json");
  io::write_json_file(ckpt + "/COMPLETE", marker);
  EXPECT_THAT(message_of<InputError>(resume),
              ::testing::HasSubstr("trainer_state.json: field 'step' is 1000000000000, outside [1, 6]"));
  // A marker of an older hps (the step alone) resumes without checksums.
  state["step"] = 2;
  io::write_json_file(ckpt + "/trainer_state.json", state);
  io::write_file_atomic(ckpt + "/COMPLETE", [](std::ostream& o) { o << "2\n"; });
  EXPECT_EQ(train(w, w.config(out.str()), true).size(), 4u);
}

// A dataset of three prompts: rewards distinct in float64 but equal in float32, all tied, and ordinary.
std::string tie_data(const test::TempDir& dir, bool only_ties = false) {
  const std::string path = dir.str("ties.jsonl");
  std::ofstream out(path);
  const std::vector<std::vector<double>> rewards =
      only_ties ? std::vector<std::vector<double>>{{0.5, 0.5, 0.5, 0.5}, {1.0, 1.0, 1.0, 1.0}, {-2.0, -2.0, -2.0, -2.0}}
                : std::vector<std::vector<double>>{{1.0, 1.0 + 1e-9, -1.0, -2.0}, {0.5, 0.5, 0.5, 0.5}, {3.0, 2.0, -1.0, -2.0}};
  for (int p = 0; p < 3; ++p)
    out << nlohmann::json{{"prompt", "Question number " + std::to_string(p) + "?"},
                          {"responses", {"Sure, here is a careful answer.", "Happy to help, step by step.", "No.",
                                         "Whatever."}},
                          {"rewards", rewards[static_cast<size_t>(p)]}}
               .dump()
        << "\n";
  return path;
}

TEST(Trainer, TiedPromptsTrainNothingAndNearTiesUseOneSelection) {
  World w;
  test::TempDir dir;
  const std::string data = tie_data(dir);
  for (const char* pref : {"bt", "hps", "pl", "hps_full"}) {
    SCOPED_TRACE(pref);
    test::TempDir out;
    Config c = w.config(out.str(), {"train.max_steps=2", "train.batch_prompts=3", std::string("loss.preference=") + pref});
    c.set_override("data.path=" + data);
    std::ostringstream log;
    const auto steps = PreferenceTrainer(read_train_config(c), c.dump()).run(false, log);
    ASSERT_EQ(steps.size(), 2u);
    for (const auto& s : steps) {
      EXPECT_EQ(s.no_preference, 1) << "the all-tied prompt, counted in every step";
      EXPECT_FALSE(s.no_update);
      EXPECT_FALSE(s.skipped);
      EXPECT_TRUE(std::isfinite(s.loss));
      for (size_t i = 0; i < s.lines.size(); ++i)
        if (s.lines[i] == 1 && std::string(pref) == "bt")  // float64 picks slot 1 alone as the best
          EXPECT_EQ(s.responses[i], (std::vector<int64_t>{1, 3}));
    }
    EXPECT_THAT(log.str(), ::testing::HasSubstr("tied 1"));
    EXPECT_THAT(log.str(), ::testing::HasSubstr("2 prompt(s) in this run's steps had responses of one reward only"));
  }
}

TEST(Trainer, StepsWhosePromptsAllTieApplyNoUpdate) {
  World w;
  test::TempDir dir, out;
  Config c = w.config(out.str(), {"train.max_steps=2", "train.batch_prompts=3", "lora.dropout=0.0"});
  c.set_override("data.path=" + tie_data(dir, true));
  const auto steps = train(w, std::move(c));
  for (const auto& s : steps) {
    EXPECT_TRUE(s.no_update);
    EXPECT_FALSE(s.skipped);
    EXPECT_EQ(s.no_preference, 3);
  }
  auto f = io::SafetensorsFile::open(checkpoint_path(out.str(), 2) + "/adapter/adapter_model.safetensors");
  for (const auto& t : f.tensors())
    if (t.name.find("lora_B") != std::string::npos) EXPECT_EQ(f.get(t.name).abs().sum().item<double>(), 0.0) << t.name;
}

TEST(TrainConfig, SettingsWithoutEffectAreNamed) {
  World w;
  test::TempDir out;
  auto unused = [&](Task task, std::initializer_list<std::string> kv) {
    Config c = w.config(out.str(), kv);
    if (task == Task::reward) c.set_override("lora.enabled=false");
    return ineffective_settings(c, read_train_config(c, task));
  };
  using ::testing::ElementsAre;
  using ::testing::HasSubstr;
  EXPECT_THAT(unused(Task::preference, {"loss.objective=ipo", "loss.label_smoothing=0.1"}),
              ElementsAre(HasSubstr("loss.label_smoothing: objective 'ipo' has no sigmoid link")));
  EXPECT_THAT(unused(Task::preference, {"loss.objective=nca", "loss.robust=true"}), ElementsAre(HasSubstr("loss.robust")));
  EXPECT_THAT(unused(Task::preference, {"loss.robust=true"}), ElementsAre(HasSubstr("without label_smoothing > 0")));
  EXPECT_THAT(unused(Task::preference, {"loss.preference=bt", "loss.n_factor=one"}), ElementsAre(HasSubstr("loss.n_factor")));
  EXPECT_THAT(unused(Task::preference, {"loss.objective=exo", "loss.n_factor=one"}),
              ElementsAre(HasSubstr("only in HPS's softmax (dpo) form")));
  EXPECT_THAT(unused(Task::preference, {"loss.preference=pl", "gamma.start=-2.0", "gamma.schedule=linear"}),
              ElementsAre(HasSubstr("gamma.schedule"), HasSubstr("gamma.start")));
  EXPECT_THAT(unused(Task::preference, {"loss.pair_rule=max_max"}), ElementsAre(HasSubstr("preference is 'hps'")));
  EXPECT_THAT(unused(Task::preference, {"loss.simpo_margin=1.0", "loss.rdpo_alpha=0.1", "loss.exo_epsilon=0.1"}),
              ElementsAre(HasSubstr("loss.exo_epsilon"), HasSubstr("loss.simpo_margin"), HasSubstr("loss.rdpo_alpha")));
  EXPECT_THAT(unused(Task::preference, {"loss.multi_lambda=0.5"}), ElementsAre(HasSubstr("multi_preferred")));
  EXPECT_THAT(unused(Task::preference, {"rm.margin=0.5"}), ElementsAre(HasSubstr("rm.margin")));
  EXPECT_THAT(unused(Task::sft, {"loss.beta=0.2"}), ElementsAre(HasSubstr("hps sft")));
  EXPECT_THAT(unused(Task::reward, {"loss.preference=pl", "loss.objective=ipo", "rm.margin=0.5"}),
              ElementsAre(HasSubstr("loss.objective"), HasSubstr("rm.margin")));
  // Effective settings are not named.
  EXPECT_THAT(unused(Task::preference, {"loss.objective=rdpo", "loss.rdpo_alpha=0.02", "loss.label_smoothing=0.1",
                                        "loss.robust=true", "gamma.start=-2.0", "loss.ties=by_slot"}),
              ::testing::IsEmpty());
  EXPECT_THAT(unused(Task::preference, {"loss.preference=bt", "loss.pair_rule=max_max", "loss.beta=0.3"}),
              ::testing::IsEmpty());
  EXPECT_THAT(unused(Task::preference, {"loss.n_factor=one", "loss.multi_preferred=true", "loss.multi_lambda=0.5"}),
              ::testing::IsEmpty());
}

TEST(GuardedUpdate, NonFiniteStepLeavesParametersAndOptimizerUntouched) {
  at::Tensor p = at::ones({3}, at::kDouble).requires_grad_(true);
  AdamW opt({p}, {0.9, 0.999, 1e-8, 0.1});
  p.mutable_grad() = at::full({3}, 0.5, at::kDouble);
  ASSERT_TRUE(guarded_update(opt, 0.1, 1.0, true).applied);
  const at::Tensor before = p.detach().clone();
  const auto state = opt.state();
  std::map<std::string, at::Tensor> saved;
  for (const auto& [k, v] : state) saved[k] = v.clone();
  p.mutable_grad() = at::tensor({1.0, NAN, 2.0}, at::kDouble);
  const auto o = guarded_update(opt, 0.1, 1.0, true);
  EXPECT_FALSE(o.applied);
  EXPECT_TRUE(std::isnan(o.grad_norm));
  EXPECT_TRUE(at::equal(p.detach(), before));
  for (const auto& [k, v] : opt.state()) EXPECT_TRUE(at::equal(v, saved[k])) << k;
  EXPECT_FALSE(p.grad().defined()) << "gradients are cleared after a skipped step";
  p.mutable_grad() = at::full({3}, 0.5, at::kDouble);
  EXPECT_FALSE(guarded_update(opt, 0.1, 1.0, /*loss_finite=*/false).applied);
  EXPECT_TRUE(at::equal(p.detach(), before));
}

}  // namespace
}  // namespace hps::train
