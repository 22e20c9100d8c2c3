// The pipeline's stage configs: every `hps train` key reaches the preference stages (shared or per method),
// SFT and the reward model read their own tables, the keys the pipeline supplies are refused with the setting
// to use, and relative paths resolve against the config file's folder.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "core/error.hpp"
#include "pipeline/pipeline_config.hpp"
#include "test_util.hpp"

namespace hps::pipeline {
namespace {

using ::testing::HasSubstr;

// A task kind that supplies the model and data, so no file is needed to read a config.
const TaskKinds kStandIn{{"stand_in", [](const Config&) { return TaskRecipe{}; }}};
const TrainInputs kInputs{"/m", "/tok", "/d.jsonl", "/out", "chatml", "cpu", 7, 64};

Config with_task(const std::string& toml) {
  return Config::from_string("[run]\ndir = \"r\"\n[task]\nkind = \"stand_in\"\n" + toml, "p.toml");
}

std::string config_error(const std::string& toml) {
  return test::message_of<ConfigError>([&] { read_pipeline_config(with_task(toml), kStandIn); });
}

// A valid value other than the default for every `hps train` key the pipeline lets through.
const std::map<std::string, std::string> kEveryKey{
    {"model.dtype", "\"float32\""}, {"model.grad_checkpointing", "true"}, {"model.autocast", "\"bfloat16\""},
    {"lora.enabled", "false"}, {"lora.rank", "4"}, {"lora.alpha", "8.0"}, {"lora.dropout", "0.125"},
    {"lora.targets", "\"q_proj,v_proj\""}, {"lora.rslora", "true"},
    {"data.format", "\"ranked\""}, {"data.on_bad_record", "\"error\""}, {"data.pku_ranking", "\"safe\""},
    {"data.allow_empty_responses", "true"}, {"data.max_prompt_length", "77"}, {"data.max_length", "300"},
    {"data.eval_fraction", "0.25"},
    {"train.epochs", "3"}, {"train.max_steps", "9"}, {"train.batch_prompts", "5"}, {"train.grad_accum", "2"},
    {"train.lr", "2e-6"}, {"train.schedule", "\"linear\""}, {"train.warmup_ratio", "0.2"}, {"train.beta1", "0.8"},
    {"train.beta2", "0.99"}, {"train.eps", "1e-7"}, {"train.weight_decay", "0.01"}, {"train.max_grad_norm", "0.5"},
    {"train.save_every", "20"}, {"train.keep_last", "3"}, {"train.eval_every", "4"}, {"train.max_bad_steps", "6"},
    {"train.stop_after", "8"}, {"train.ref_cache", "true"}, {"train.packing", "false"},
    {"train.max_tokens_per_micro_batch", "4096"}, {"train.ddp_bucket_cap_mb", "0.5"},
    {"loss.objective", "\"ipo\""}, {"loss.beta", "0.3"}, {"loss.pair_rule", "\"max_max\""}, {"loss.n_factor", "\"one\""},
    {"loss.label_smoothing", "0.1"}, {"loss.robust", "true"}, {"loss.exo_epsilon", "0.01"},
    {"loss.simpo_margin", "0.25"}, {"loss.rdpo_alpha", "0.5"}, {"loss.multi_preferred", "true"},
    {"loss.multi_lambda", "0.4"}, {"loss.ties", "\"by_slot\""},
    {"gamma.schedule", "\"linear\""}, {"gamma.start", "-1.0"}, {"gamma.end", "1.0"}, {"gamma.interval", "0.5"},
    {"rm.margin", "0.75"}};
// What the pipeline supplies itself (and refuses in the file).
const std::set<std::string> kSuppliedKeys{"model.path", "model.tokenizer", "model.device", "data.chat_format",
                                          "data.path", "train.out_dir", "train.seed", "loss.preference"};

// The shared tables with every key of kEveryKey, and [train] methods.
std::string every_key_toml() {
  std::map<std::string, std::string> tables{{"train", "methods = \"bt,hps\"\n"}};
  for (const auto& [key, value] : kEveryKey) {
    const auto dot = key.find('.');
    // Appendix E's keys in hps's own table: multi_preferred is an error with bt.
    const std::string table = key.starts_with("loss.multi_") ? "methods.hps.loss" : key.substr(0, dot);
    tables[table] += key.substr(dot + 1) + " = " + value + "\n";
  }
  std::string toml;
  for (const auto& [table, body] : tables) toml += "[" + table + "]\n" + body;
  return toml;
}

TEST(PipelineConfig, TheTestSetsEveryTrainKeyThePipelineDoesNotSupply) {
  // A key added to `hps train` fails here until it is given a value above (and so checked below).
  for (const auto& key : train::train_config_keys())
    EXPECT_TRUE(kEveryKey.contains(key) != kSuppliedKeys.contains(key)) << key;
}

TEST(PipelineConfig, EveryTrainKeyReachesThePreferenceStages) {
  const PipelineConfig p = read_pipeline_config(
      with_task("[methods.hps.gamma]\nend = 3.0\n" + every_key_toml()), kStandIn);
  const TrainStage s = stage_train_config(p, "hps", kInputs);
  for (const auto& [key, value] : kEveryKey) EXPECT_TRUE(s.view.has(key)) << key;
  const train::TrainConfig& t = s.config;
  EXPECT_EQ(t.task, train::Task::preference);
  EXPECT_EQ(t.model.path, "/m");
  EXPECT_EQ(t.model.tokenizer, "/tok");
  EXPECT_EQ(t.model.dtype, "float32");
  EXPECT_TRUE(t.model.grad_checkpointing);
  EXPECT_EQ(t.model.autocast, "bfloat16");
  EXPECT_FALSE(t.use_lora);
  EXPECT_EQ(t.lora.rank, 4);
  EXPECT_EQ(t.lora.alpha, 8.0);
  EXPECT_EQ(t.lora.dropout, 0.125);
  EXPECT_EQ(t.lora.targets, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_TRUE(t.lora.rslora);
  EXPECT_EQ(t.data.path, "/d.jsonl");
  EXPECT_EQ(t.data.chat_format, "chatml");
  EXPECT_EQ(t.data.options.format, data::Format::ranked);
  EXPECT_EQ(t.data.options.on_bad_record, data::OnBadRecord::error);
  EXPECT_EQ(t.data.options.pku_ranking, data::PkuRanking::safe);
  EXPECT_TRUE(t.data.options.allow_empty_responses);
  EXPECT_EQ(t.data.max_prompt_length, 77);
  EXPECT_EQ(t.data.max_length, 300);
  EXPECT_EQ(t.data.eval_fraction, 0.25);
  const train::LoopSettings& l = t.train;
  EXPECT_EQ(std::vector<int64_t>({l.epochs, l.max_steps, l.batch_prompts, l.grad_accum, l.save_every, l.keep_last,
                                  l.eval_every, l.max_bad_steps, l.stop_after}),
            std::vector<int64_t>({3, 9, 5, 2, 20, 3, 4, 6, 8}));
  EXPECT_EQ(l.lr, 2e-6);  // exactly: no number is printed and parsed back on the way
  EXPECT_EQ(l.schedule, train::ScheduleKind::linear);
  EXPECT_EQ(std::vector<double>({l.warmup_ratio, l.adamw.beta1, l.adamw.beta2, l.adamw.eps, l.adamw.weight_decay,
                                 l.max_grad_norm}),
            std::vector<double>({0.2, 0.8, 0.99, 1e-7, 0.01, 0.5}));
  EXPECT_EQ(l.ref_cache, train::RefCacheMode::on);
  EXPECT_FALSE(l.packing);
  EXPECT_EQ(l.max_tokens_per_micro_batch, 4096);
  EXPECT_EQ(l.ddp_bucket_cap_mb, 0.5);
  EXPECT_EQ(l.seed, 7u);
  EXPECT_EQ(l.out_dir, "/out");
  const prefs::LossConfig& c = t.loss;
  EXPECT_EQ(c.preference, prefs::Preference::hps);  // the method
  EXPECT_EQ(c.objective, prefs::Objective::ipo);
  EXPECT_EQ(c.pair_rule, prefs::PairRule::max_max);
  EXPECT_EQ(c.n_factor, prefs::NFactor::one);
  EXPECT_EQ(c.ties, prefs::Ties::by_slot);
  EXPECT_EQ(std::vector<double>({c.beta, c.label_smoothing, c.exo_epsilon, c.simpo_margin, c.rdpo_alpha, c.multi_lambda}),
            std::vector<double>({0.3, 0.1, 0.01, 0.25, 0.5, 0.4}));
  EXPECT_TRUE(c.robust && c.multi_preferred);
  EXPECT_EQ(t.gamma.kind, prefs::GammaScheduleKind::linear);
  EXPECT_EQ(std::vector<double>({t.gamma.start, t.gamma.end, t.gamma.interval}), std::vector<double>({-1.0, 3.0, 0.5}));
  EXPECT_EQ(t.rm_margin, 0.75);
  // [methods.hps.gamma] is hps's alone: bt keeps the shared γ.
  EXPECT_EQ(stage_train_config(p, "bt", kInputs).config.gamma.end, 1.0);
  EXPECT_EQ(stage_train_config(p, "bt", kInputs).config.loss.preference, prefs::Preference::bt);
}

TEST(PipelineConfig, PipelineDefaultsAndTheSftAndRewardTables) {
  const PipelineConfig p = read_pipeline_config(
      with_task("[train]\nlr = 3e-6\n[loss]\nbeta = 0.5\n[data]\non_bad_record = \"error\"\n[sft.train]\nmax_steps = 7\n"
                "[reward.loss]\npreference = \"pl\"\n[reward.rm]\nmargin = 0.5\n"),
      kStandIn);
  const train::TrainConfig hps = stage_train_config(p, "hps", kInputs).config;
  EXPECT_EQ(hps.train.max_steps, 50);
  EXPECT_EQ(hps.train.save_every, kSaveEvery);
  EXPECT_TRUE(hps.use_lora);
  EXPECT_EQ(hps.data.max_length, 128);  // twice the prompt budget
  const TrainStage sft = stage_train_config(p, "sft", kInputs);
  EXPECT_EQ(sft.config.task, train::Task::sft);
  EXPECT_EQ(sft.config.train.max_steps, 7);
  EXPECT_EQ(sft.config.train.lr, 1e-4);  // [train] configures the methods, not SFT
  EXPECT_EQ(sft.config.train.warmup_ratio, 0.0);
  EXPECT_FALSE(sft.config.use_lora);
  EXPECT_FALSE(sft.view.has("loss.beta"));
  EXPECT_EQ(sft.config.data.options.on_bad_record, data::OnBadRecord::error);  // [data] is every stage's
  const train::TrainConfig rm = stage_train_config(p, "reward", kInputs).config;
  EXPECT_EQ(rm.task, train::Task::reward);
  EXPECT_EQ(rm.loss.preference, prefs::Preference::pl);
  EXPECT_EQ(rm.rm_margin, 0.5);
  EXPECT_EQ(stage_train_config(read_pipeline_config(with_task(""), kStandIn), "reward", kInputs).config.loss.preference,
            prefs::Preference::bt);
}

TEST(PipelineConfig, KeysThePipelineSuppliesAreRefusedWithTheSettingToUse) {
  EXPECT_THAT(config_error("[train]\nseed = 3\n"), HasSubstr("train.seed is set by hps pipeline (stage bt), not in p.toml ([methods.bt.*] over the shared tables): use [run] seed"));
  EXPECT_THAT(config_error("[sft.model]\npath = \"x\"\n"), HasSubstr("model.path is set by hps pipeline (stage sft)"));
  EXPECT_THAT(config_error("[methods.hps.loss]\npreference = \"pl\"\n"), HasSubstr("use [train] methods"));
  EXPECT_THAT(config_error("[methods.hps.data]\npath = \"x\"\n"), HasSubstr("preference stages train on the annotated"));
  EXPECT_THAT(config_error("[data]\npath = \"x\"\n"), HasSubstr("use [sft.data] path and [reward.data] path"));
  EXPECT_THAT(config_error("[train]\nout_dir = \"x\"\n"), HasSubstr("use [run] dir"));
  EXPECT_THAT(config_error("[methods.hsp.gamma]\nend = 1.0\n"), HasSubstr("[methods.hsp] configures a method train.methods does not list"));
  EXPECT_THAT(config_error("[train]\nmethods = \"bt,bt\"\n"), HasSubstr("train.methods lists bt twice"));
  EXPECT_THAT(config_error("[train]\nmax_stepz = 3\n"), HasSubstr("unknown key 'train.max_stepz'"));
  EXPECT_THAT(config_error("[sft]\nsteps = 3\n"), HasSubstr("unknown key 'sft.steps'"));
}

TEST(PipelineConfig, RelativePathsResolveAgainstTheFilesFolder) {
  test::TempDir dir;
  io::make_dirs(dir.path + "/cfg");
  io::make_dirs(dir.path + "/model");
  for (const char* f : {"/model/config.json", "/model/tokenizer.json", "/prompts.jsonl", "/rm.jsonl"})
    std::ofstream(dir.path + f) << "{}\n";
  const std::string file = dir.path + "/cfg/p.toml";
  std::ofstream(file) << "[run]\ndir = \"out\"\n[policy]\npath = \"../model\"\n[generate]\nprompts = \"../prompts.jsonl\"\n"
                         "[reward.data]\npath = \"../rm.jsonl\"\n[eval]\nprompts = \"" + dir.path + "/prompts.jsonl\"\n";
  const PipelineConfig p = read_pipeline_config(Config::from_file(file), {});
  EXPECT_EQ(p.policy.path, dir.path + "/cfg/../model");
  EXPECT_EQ(p.policy.tokenizer, p.policy.path);
  EXPECT_EQ(p.sft_data, dir.path + "/cfg/../prompts.jsonl");
  EXPECT_EQ(p.reward.data, dir.path + "/cfg/../rm.jsonl");
  EXPECT_EQ(p.eval.test, dir.path + "/prompts.jsonl");  // absolute: as is
  EXPECT_EQ(p.run.dir, "out");                           // the output: relative to the current directory
  // A missing model folder is named, with where relative paths point.
  Config moved = Config::from_file(file);
  moved.set_override("policy.path=" + dir.path + "/no-model");
  EXPECT_THAT(test::message_of<ConfigError>([&] { read_pipeline_config(moved, {}); }),
              HasSubstr("policy.path: no folder " + dir.path + "/no-model (relative paths in " + file));
}

}  // namespace
}  // namespace hps::pipeline
