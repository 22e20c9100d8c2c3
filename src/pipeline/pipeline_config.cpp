#include "pipeline/pipeline_config.hpp"

#include <algorithm>
#include <sstream>

#include "core/config_schema.hpp"
#include "core/enum_names.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/hf_hub.hpp"
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

constexpr EnumNames<RewardInit, 2> kRewardInits{{{"policy", RewardInit::policy}, {"sft", RewardInit::sft}}};
}  // namespace

const char* to_string(RewardInit r) { return enum_name(r, kRewardInits).data(); }

namespace {

const TableSchema<RunSettings>& run_schema() {
  static const TableSchema<RunSettings> schema = TableSchema<RunSettings>("run")
                                                     .add("dir", &RunSettings::dir, required("the run's folder"))
                                                     .add("seed", &RunSettings::seed)
                                                     .add("seeds", &RunSettings::seeds, at_least<int64_t>(1))
                                                     .add("device", &RunSettings::device);
  return schema;
}

void read_run(const Config& c, PipelineConfig& p) { run_schema().read(c, p.run); }

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

// The stage tables' own keys (the training tables they also allow are read per stage).
const TableSchema<PolicySettings>& policy_schema() {
  static const auto s = TableSchema<PolicySettings>("policy")
                            .path("path", &PolicySettings::path)
                            .path("tokenizer", &PolicySettings::tokenizer)
                            .add("chat_format", &PolicySettings::chat_format);
  return s;
}
const TableSchema<PipelineConfig>& sft_schema() {
  static const auto s = TableSchema<PipelineConfig>("sft").add("enabled", &PipelineConfig::sft).also_allows(train::kTrainTables);
  return s;
}
const TableSchema<GenerateSettings>& generate_schema() {
  using G = GenerateSettings;
  static const auto s = TableSchema<G>("generate")
                            .path("prompts", &G::prompts)
                            .add("n", &G::n, at_least<int64_t>(1))
                            .add("temperature", &G::temperature)
                            .add("max_new_tokens", &G::max_new_tokens, at_least<int64_t>(1))
                            .add("batch_prompts", &G::batch_prompts, at_least<int64_t>(1))
                            .add("distinct", &G::distinct)
                            .add("max_prompt_length", &G::max_prompt_length);
  return s;
}
const TableSchema<RewardSettings>& reward_schema() {
  using R = RewardSettings;
  static const auto s = TableSchema<R>("reward")
                            .path("path", &R::path)
                            .path("tokenizer", &R::tokenizer)
                            .add("chat_format", &R::chat_format)
                            .name("init", &R::init, [](const std::string& v, const std::string& key) {
                              return parse_enum(v, key, kRewardInits);
                            })
                            .also_allows(train::kTrainTables);
  return s;
}
const TableSchema<EvalSettings>& eval_schema() {
  static const auto s = TableSchema<EvalSettings>("eval")
                            .path("prompts", &EvalSettings::prompts)
                            .path("test", &EvalSettings::test)
                            .add("n", &EvalSettings::n, at_least<int64_t>(0))
                            .add("max_prompt_length", &EvalSettings::max_prompt_length);
  return s;
}

void read_stage_tables(const Config& c, PipelineConfig& p) {
  const auto& policy = policy_schema();
  const auto& sft = sft_schema();
  const auto& generate = generate_schema();
  const auto& reward = reward_schema();
  const auto& eval = eval_schema();
  policy.read(c, p.policy);
  // A hub id as written ("Qwen/Qwen2.5-0.5B-Instruct"), not joined to the config's folder, resolves in the HF cache.
  auto model_dir = [&](const char* key, std::string& v) {
    if (c.has(key)) v = io::resolve_model_dir(v, c.get_string(key, ""));
  };
  model_dir("policy.path", p.policy.path);
  model_dir("policy.tokenizer", p.policy.tokenizer);
  if (!c.has("policy.tokenizer")) p.policy.tokenizer = p.policy.path;
  p.max_prompt_length = c.get_int("data.max_prompt_length", 0);
  if (c.has("data.path"))
    throw ConfigError("data.path cannot be shared by the stages: use [sft.data] path and [reward.data] path "
                      "(preference stages train on the annotated responses)");
  sft.read(c, p);
  generate.read(c, p.generate);
  p.sft_data = c.get_path("sft.data.path", p.generate.prompts);
  reward.read(c, p.reward);
  model_dir("reward.path", p.reward.path);
  model_dir("reward.tokenizer", p.reward.tokenizer);
  p.reward.data = c.get_path("reward.data.path", p.sft_data);
  eval.read(c, p.eval);
  if (!c.has("eval.test")) p.eval.test = p.eval.prompts;
  if (p.eval.n == 0) p.eval.n = p.generate.n;
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

void write_pipeline_config(const PipelineConfig& p, std::ostream& out) {
  if (p.task) out << "# a [task] table supplies the policy, the prompts and the data: the paths below stay unused\n";
  run_schema().write(p.run, out);
  out << "\n";
  policy_schema().write(p.policy, out);
  out << "\n[data]\nmax_prompt_length = " << p.max_prompt_length << "\n\n";
  sft_schema().write(p, out);
  out << "\n";
  generate_schema().write(p.generate, out);
  out << "\n";
  reward_schema().write(p.reward, out);
  out << "\n";
  eval_schema().write(p.eval, out);
  std::string methods;
  for (const auto& m : p.methods) methods += (methods.empty() ? "" : ",") + m;
  out << "\n[train]\nmethods = " << toml_string(methods) << "\n";
  // Each training stage: every key as that stage reads it (shared tables, then its own); what the pipeline
  // supplies (model, data, out_dir) is shown as <…>.
  const TrainInputs stand_in{"<model>", "<tokenizer>", "<data>", "<out>", "", p.run.device, p.run.seed,
                             p.max_prompt_length > 0 ? p.max_prompt_length : 1024};
  std::vector<std::pair<std::string, std::string>> stages;
  if (p.sft) stages.emplace_back("sft", "[sft.<table>]");
  if (p.reward.path.empty()) stages.emplace_back("reward", "[reward.<table>]");
  for (const auto& m : p.methods) stages.emplace_back(m, "[methods." + m + ".<table>]");
  for (const auto& [stage, tables] : stages) {
    std::ostringstream settings;
    train::write_train_config(stage_train_config(p, stage, stand_in).config, settings);
    out << "\n# ---- stage " << stage << ": its training settings, from the shared tables and " << tables << " ----\n";
    std::istringstream lines(settings.str());
    for (std::string line; std::getline(lines, line);) out << (line.empty() ? "#" : "# " + line) << "\n";
  }
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
  try {
    train::TrainConfig config = train::read_train_config(view, base);
    return {std::move(config), std::move(view)};
  } catch (Error& e) {
    e.add_context("while reading the settings of stage " + (method ? "train_" + stage : stage) + " ([" +
                        (method ? "methods." + stage + ".*" : stage + ".*") + "] over the shared tables)");
    throw;
  }
}

}  // namespace hps::pipeline
