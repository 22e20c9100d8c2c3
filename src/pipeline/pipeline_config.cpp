#include "pipeline/pipeline_config.hpp"

#include <algorithm>
#include <sstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "prefs/loss_config.hpp"

namespace hps::pipeline {

namespace {

// Trainer keys the pipeline supplies itself (what connects the stages), with the setting to use instead.
struct Supplied {
  const char* key;
  const char* instead;
};
constexpr Supplied kSupplied[] = {
    {"model.path", "[policy] path (SFT starts from it, the other stages from the SFT model)"},
    {"model.tokenizer", "[policy] tokenizer"},
    {"model.device", "[run] device"},
    {"data.chat_format", "[policy] chat_format"},
    {"train.out_dir", "[run] dir (each stage trains in RUN/<stage>/run)"},
    {"train.seed", "[run] seed"},
};
// ... and, for the preference stages, what the method decides.
constexpr Supplied kSuppliedToMethods[] = {
    {"data.path", "nothing: preference stages train on the annotated responses (RUN/annotate/ranked.jsonl)"},
    {"loss.preference", "[train] methods (a method is a preference model)"},
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

// The keys a table may hold beside the trainer's tables ([sft] enabled + [sft.train], [sft.loss], …).
std::vector<std::string_view> with_train_tables(std::initializer_list<std::string_view> own) {
  std::vector<std::string_view> out(own);
  out.insert(out.end(), train::kTrainTables.begin(), train::kTrainTables.end());
  return out;
}

// A stage's view of the file: the shared tables, then the stage's own on top (`[methods.hps.gamma]` over
// `[gamma]`). The SFT and reward stages share only [data] and [model]: [train] [loss] … configure the methods.
Config stage_view(const Config& file, const std::string& own_prefix, bool all_shared) {
  Config v = Config::from_string("", file.source() + " ([" + own_prefix + ".*] over the shared tables)");
  for (const auto t : train::kTrainTables) {
    if (all_shared || t == "data" || t == "model") v.merge_table(file, t, t);
    v.merge_table(file, own_prefix + "." + std::string(t), t);
  }
  v.erase("train.methods");  // the pipeline's own key in [train]
  return v;
}

void refuse_supplied(const Config& view, std::span<const Supplied> keys, const std::string& stage) {
  for (const auto& [key, instead] : keys)
    if (view.has(key))
      throw ConfigError(std::string(key) + " is set by hps pipeline (stage " + stage + "), not in " +
                        view.source() + ": use " + instead);
}

// The pipeline's defaults for a training stage, over `hps train`'s.
train::TrainConfig stage_defaults(train::Task task, const TrainInputs& in) {
  train::TrainConfig t = train::train_defaults(task);
  t.model.path = in.model, t.model.tokenizer = in.tokenizer, t.model.device = in.device;
  t.data.path = in.data, t.data.chat_format = in.chat_format;
  t.data.max_prompt_length = in.max_prompt_length, t.data.max_length = 2 * in.max_prompt_length;
  // Generated and downloaded data may hold a record without a pair; it is reported and skipped.
  t.data.options.on_bad_record = data::OnBadRecord::skip;
  t.train.seed = in.seed, t.train.out_dir = in.out_dir;
  t.train.max_steps = 50, t.train.save_every = kSaveEvery;
  if (task == train::Task::preference) {
    t.train.lr = 1e-5, t.train.batch_prompts = 4;
  } else {
    t.train.lr = 1e-4, t.train.batch_prompts = 8, t.train.warmup_ratio = 0.0;
  }
  return t;
}

void require_dir(const std::string& key, const std::string& path, const char* file, const Config& c) {
  if (!io::file_exists(path + "/" + file))
    throw ConfigError(key + ": " + (io::dir_exists(path) ? "no " + std::string(file) + " in " + path
                                                            : "no folder " + path) +
                      (c.base_dir().empty() ? "" : " (relative paths in " + c.source() + " resolve against " +
                                                       c.base_dir() + ")"));
}

void require_file(const std::string& key, const std::string& path, const Config& c) {
  if (!io::file_exists(path))
    throw ConfigError(key + ": no file " + path +
                      (c.base_dir().empty() ? "" : " (relative paths in " + c.source() + " resolve against " +
                                                       c.base_dir() + ")"));
}

void read_run(const Config& c, PipelineConfig& p) {
  c.check_known("run", {"dir", "seed", "seeds", "device"});
  p.run.dir = c.get_string("run.dir", "");
  if (p.run.dir.empty()) throw ConfigError("run.dir is required");
  p.run.seed = static_cast<uint64_t>(c.get_int("run.seed", 0));
  p.run.seeds = c.get_int("run.seeds", 1);
  if (p.run.seeds < 1) throw ConfigError("run.seeds must be ≥ 1, found " + std::to_string(p.run.seeds));
  p.run.device = c.get_string("run.device", "cpu");
}

// [task]: the task kind reads the table; the task supplies the model and data, so the file may not name them.
void read_task(const Config& c, const TaskKinds& kinds, PipelineConfig& p) {
  if (!c.has("task")) return;
  const std::string kind = c.get_string("task.kind", "");
  const auto it = kinds.find(kind);
  if (it == kinds.end()) {
    std::string known;
    for (const auto& [k, f] : kinds) known += (known.empty() ? "" : ", ") + k;
    throw ConfigError("task.kind \"" + kind + "\" is not a task this command knows (known: " + known + ")");
  }
  for (const char* k : {"policy.path", "policy.tokenizer", "policy.chat_format", "sft.data.path", "generate.prompts",
                        "reward.path", "reward.tokenizer", "reward.chat_format", "reward.data.path", "eval.prompts",
                        "eval.test"})
    if (c.has(k)) throw ConfigError(std::string(k) + " cannot be set with [task]: the task supplies the model and data");
  p.task = it->second(c);
}

void read_stage_tables(const Config& c, PipelineConfig& p) {
  c.check_known("policy", {"path", "tokenizer", "chat_format"});
  p.policy.path = c.get_path("policy.path", "");
  p.policy.tokenizer = c.get_path("policy.tokenizer", p.policy.path);
  p.policy.chat_format = c.get_string("policy.chat_format", "");
  p.max_prompt_length = c.get_int("data.max_prompt_length", 0);
  if (c.has("data.path"))
    throw ConfigError("data.path cannot be shared by the stages: use [sft.data] path and [reward.data] path "
                      "(preference stages train on the annotated responses)");
  c.check_known("sft", with_train_tables({"enabled"}));
  p.sft = c.get_bool("sft.enabled", true);
  c.check_known("generate", {"prompts", "n", "temperature", "max_new_tokens", "batch_prompts", "distinct", "max_prompt_length"});
  auto& g = p.generate;
  g.prompts = c.get_path("generate.prompts", "");
  p.sft_data = c.get_path("sft.data.path", g.prompts);
  g.n = c.get_int("generate.n", g.n);
  g.temperature = c.get_double("generate.temperature", g.temperature);
  g.max_new_tokens = c.get_int("generate.max_new_tokens", g.max_new_tokens);
  g.batch_prompts = c.get_int("generate.batch_prompts", g.batch_prompts);
  g.distinct = c.get_bool("generate.distinct", g.distinct);
  g.max_prompt_length = c.get_int("generate.max_prompt_length", 0);
  c.check_known("reward", with_train_tables({"path", "tokenizer", "chat_format", "init"}));
  auto& r = p.reward;
  r.path = c.get_path("reward.path", "");
  r.tokenizer = c.get_path("reward.tokenizer", "");
  r.chat_format = c.get_string("reward.chat_format", "");
  r.data = c.get_path("reward.data.path", p.sft_data);
  const std::string init = c.get_string("reward.init", "policy");
  if (init != "policy" && init != "sft")
    throw ConfigError("reward.init must be \"policy\" (the policy's starting weights) or \"sft\" (the SFT model, as "
                      "InstructGPT), found \"" + init + "\"");
  r.init = init == "sft" ? RewardInit::sft : RewardInit::policy;
  c.check_known("eval", {"prompts", "test", "n", "max_prompt_length"});
  p.eval.prompts = c.get_path("eval.prompts", "");
  p.eval.test = c.get_path("eval.test", p.eval.prompts);
  p.eval.n = c.get_int("eval.n", g.n);
  p.eval.max_prompt_length = c.get_int("eval.max_prompt_length", 0);
}

void read_methods(const Config& c, PipelineConfig& p) {
  p.methods = split_list(c.get_string("train.methods", "bt,pl,hps"));
  if (p.methods.empty()) throw ConfigError("train.methods lists no method");
  for (size_t i = 0; i < p.methods.size(); ++i) {
    prefs::parse_preference(p.methods[i], "train.methods");
    if (std::find(p.methods.begin(), p.methods.begin() + static_cast<std::ptrdiff_t>(i), p.methods[i]) !=
        p.methods.begin() + static_cast<std::ptrdiff_t>(i))
      throw ConfigError("train.methods lists " + p.methods[i] + " twice");
  }
  for (const auto& m : c.keys("methods")) {
    if (std::find(p.methods.begin(), p.methods.end(), m) == p.methods.end())
      throw ConfigError("[methods." + m + "] configures a method train.methods does not list");
    c.check_known("methods." + m, train::kTrainTables);
  }
}

// Files and folders the stages will read, checked now rather than after hours of earlier stages.
void check_inputs(const Config& c, const PipelineConfig& p) {
  if (p.task) return;
  for (auto [v, k] : {std::pair{&p.policy.path, "policy.path"}, {&p.generate.prompts, "generate.prompts"},
                      {&p.eval.prompts, "eval.prompts"}})
    if (v->empty()) throw ConfigError(std::string(k) + " is required (or a [task] table)");
  require_dir("policy.path", p.policy.path, "config.json", c);
  require_dir("policy.tokenizer", p.policy.tokenizer, "tokenizer.json", c);
  if (p.sft) require_file("sft.data.path", p.sft_data, c);
  require_file("generate.prompts", p.generate.prompts, c);
  if (!p.reward.path.empty()) {
    require_dir("reward.path", p.reward.path, "config.json", c);
    require_dir("reward.tokenizer", p.reward.tokenizer.empty() ? p.reward.path : p.reward.tokenizer, "tokenizer.json", c);
  } else {
    require_file("reward.data.path", p.reward.data, c);
  }
  require_file("eval.prompts", p.eval.prompts, c);
  require_file("eval.test", p.eval.test, c);
}

}  // namespace

PipelineConfig read_pipeline_config(const Config& c, const TaskKinds& kinds) {
  c.check_known("", {"run", "task", "policy", "data", "model", "sft", "generate", "reward", "train", "loss", "gamma",
                     "lora", "rm", "methods", "eval"});
  PipelineConfig p;
  p.file = c;
  read_run(c, p);
  read_task(c, kinds, p);
  read_stage_tables(c, p);
  read_methods(c, p);
  check_inputs(c, p);
  // Every training stage's config, read now with stand-in paths: a bad key fails before any stage runs.
  const TrainInputs stand_in{"<model>", "<tokenizer>", "<data>", "<out>", "", p.run.device, p.run.seed, 1024};
  if (p.sft) stage_train_config(p, "sft", stand_in);
  if (p.reward.path.empty()) stage_train_config(p, "reward", stand_in);
  for (const auto& m : p.methods) stage_train_config(p, m, stand_in);
  return p;
}

TrainStage stage_train_config(const PipelineConfig& p, const std::string& stage, const TrainInputs& in) {
  const bool method = stage != "sft" && stage != "reward";
  const train::Task task = stage == "sft" ? train::Task::sft : stage == "reward" ? train::Task::reward
                                                                                  : train::Task::preference;
  Config view = stage_view(p.file, method ? "methods." + stage : stage, method);
  refuse_supplied(view, kSupplied, stage);
  train::TrainConfig base = stage_defaults(task, in);
  if (method) {
    refuse_supplied(view, kSuppliedToMethods, stage);
    base.loss.preference = prefs::parse_preference(stage, "train.methods");
  } else {
    view.erase("data.path");  // [sft.data] path / [reward.data] path: read (and resolved) into `in.data`
  }
  train::TrainConfig config = train::read_train_config(view, base);
  return {std::move(config), std::move(view)};
}

}  // namespace hps::pipeline
