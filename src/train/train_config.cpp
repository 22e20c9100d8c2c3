#include "train/train_config.hpp"

#include <span>

#include "core/enum_names.hpp"
#include "core/error.hpp"
#include "prefs/config_io.hpp"

namespace hps::train {

namespace {
constexpr EnumNames<Task, 3> kTasks{{{"preference", Task::preference}, {"sft", Task::sft}, {"reward", Task::reward}}};
}  // namespace

const char* to_string(Task t) { return enum_name(t, kTasks).data(); }  // the table's names are literals

namespace {

// Each table's keys, declared once: check_known, train_config_keys() and the ineffective-settings rule use them.
constexpr std::string_view kModelKeys[] = {"path", "tokenizer", "dtype", "device", "grad_checkpointing", "autocast"};
constexpr std::string_view kLoraKeys[] = {"enabled", "rank", "alpha", "dropout", "targets", "rslora"};
constexpr std::string_view kDataKeys[] = {"path", "format", "on_bad_record", "pku_ranking", "allow_empty_responses",
                                          "chat_format", "max_prompt_length", "max_length", "eval_fraction"};
constexpr std::string_view kLoopKeys[] = {"epochs", "max_steps", "batch_prompts", "grad_accum", "lr", "schedule",
                                          "warmup_ratio", "beta1", "beta2", "eps", "weight_decay", "max_grad_norm",
                                          "seed", "out_dir", "save_every", "keep_last", "eval_every", "max_bad_steps",
                                          "stop_after", "ref_cache"};
constexpr std::string_view kRmKeys[] = {"margin"};
// [loss] and [gamma] are read (and checked) by prefs::read_loss_config / read_gamma_schedule.
constexpr std::string_view kLossKeys[] = {"preference", "objective", "beta", "pair_rule", "n_factor",
                                          "label_smoothing", "robust", "exo_epsilon", "simpo_margin",
                                          "rdpo_alpha", "multi_preferred", "multi_lambda", "ties"};
constexpr std::string_view kGammaKeys[] = {"schedule", "start", "end", "interval"};

struct TableKeys {
  std::string_view table;
  std::span<const std::string_view> keys;
};
constexpr TableKeys kTableKeys[] = {{"model", kModelKeys}, {"lora", kLoraKeys}, {"data", kDataKeys},
                                    {"train", kLoopKeys},  {"loss", kLossKeys}, {"gamma", kGammaKeys},
                                    {"rm", kRmKeys}};

// "q_proj,v_proj" → {"q_proj", "v_proj"}.
std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b <= s.size()) {
    const size_t e = s.find(',', b);
    const std::string name = s.substr(b, e == std::string::npos ? std::string::npos : e - b);
    if (!name.empty()) out.push_back(name);
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return out;
}

ModelSettings read_model(const Config& c, const ModelSettings& base) {
  c.check_known("model", kModelKeys);
  ModelSettings m = base;
  m.path = c.get_string("model.path", base.path);
  if (m.path.empty()) throw ConfigError("model.path is required (a Hugging Face model folder)");
  m.tokenizer = c.get_string("model.tokenizer", base.tokenizer.empty() ? m.path : base.tokenizer);
  m.dtype = c.get_string("model.dtype", base.dtype);
  m.device = c.get_string("model.device", base.device);
  m.grad_checkpointing = c.get_bool("model.grad_checkpointing", base.grad_checkpointing);
  m.autocast = c.get_string("model.autocast", base.autocast);
  if (!m.autocast.empty() && m.autocast != "bfloat16" && m.autocast != "float16")
    throw ConfigError("model.autocast '" + m.autocast + "': expected bfloat16 or float16 (or empty for none)");
  if (!m.autocast.empty() && !m.dtype.empty() && m.dtype != "float32")
    throw ConfigError("model.autocast needs float32 weights (model.dtype = float32), found model.dtype = " + m.dtype);
  return m;
}

void read_lora(const Config& c, TrainConfig& t, const TrainConfig& base) {
  c.check_known("lora", kLoraKeys);
  t.use_lora = c.get_bool("lora.enabled", base.use_lora);
  t.lora.rank = c.get_int("lora.rank", base.lora.rank);
  t.lora.alpha = c.get_double("lora.alpha", base.lora.alpha);
  t.lora.dropout = c.get_double("lora.dropout", base.lora.dropout);
  t.lora.rslora = c.get_bool("lora.rslora", base.lora.rslora);
  if (c.has("lora.targets")) t.lora.targets = split_commas(c.get_string("lora.targets", ""));
  t.lora.base_model = t.model.path;
}

DataSettings read_data(const Config& c, const DataSettings& base) {
  c.check_known("data", kDataKeys);
  DataSettings d = base;
  d.path = c.get_string("data.path", base.path);
  if (d.path.empty()) throw ConfigError("data.path is required (a .jsonl or .jsonl.gz dataset)");
  auto& o = d.options;
  // Enums: parsed when given, base's otherwise.
  if (c.has("data.format")) o.format = data::parse_format(c.get_string("data.format", ""));
  if (c.has("data.on_bad_record")) o.on_bad_record = data::parse_on_bad_record(c.get_string("data.on_bad_record", ""));
  if (c.has("data.pku_ranking")) o.pku_ranking = data::parse_pku_ranking(c.get_string("data.pku_ranking", ""));
  o.allow_empty_responses = c.get_bool("data.allow_empty_responses", base.options.allow_empty_responses);
  d.chat_format = c.get_string("data.chat_format", base.chat_format);
  d.max_prompt_length = c.get_int("data.max_prompt_length", base.max_prompt_length);
  d.max_length = c.get_int("data.max_length", base.max_length);
  d.eval_fraction = c.get_double("data.eval_fraction", base.eval_fraction);
  if (d.eval_fraction < 0 || d.eval_fraction >= 1) throw ConfigError("data.eval_fraction must be in [0, 1)");
  return d;
}

LoopSettings read_loop(const Config& c, const LoopSettings& base) {
  c.check_known("train", kLoopKeys);
  LoopSettings l = base;
  l.epochs = c.get_int("train.epochs", base.epochs);
  l.max_steps = c.get_int("train.max_steps", base.max_steps);
  l.batch_prompts = c.get_int("train.batch_prompts", base.batch_prompts);
  l.grad_accum = c.get_int("train.grad_accum", base.grad_accum);
  l.lr = c.get_double("train.lr", base.lr);
  if (c.has("train.schedule")) l.schedule = parse_schedule(c.get_string("train.schedule", ""));
  l.warmup_ratio = c.get_double("train.warmup_ratio", base.warmup_ratio);
  l.adamw = {c.get_double("train.beta1", base.adamw.beta1), c.get_double("train.beta2", base.adamw.beta2),
             c.get_double("train.eps", base.adamw.eps), c.get_double("train.weight_decay", base.adamw.weight_decay)};
  l.max_grad_norm = c.get_double("train.max_grad_norm", base.max_grad_norm);
  l.seed = static_cast<uint64_t>(c.get_int("train.seed", static_cast<int64_t>(base.seed)));
  l.out_dir = c.get_string("train.out_dir", base.out_dir);
  l.save_every = c.get_int("train.save_every", base.save_every);
  l.keep_last = c.get_int("train.keep_last", base.keep_last);
  l.eval_every = c.get_int("train.eval_every", base.eval_every);
  l.max_bad_steps = c.get_int("train.max_bad_steps", base.max_bad_steps);
  l.stop_after = c.get_int("train.stop_after", base.stop_after);
  l.ref_cache = c.get_bool("train.ref_cache", base.ref_cache);
  for (auto [v, name] : {std::pair{l.batch_prompts, "train.batch_prompts"}, {l.grad_accum, "train.grad_accum"},
                         {l.keep_last, "train.keep_last"}, {l.max_bad_steps, "train.max_bad_steps"}})
    if (v <= 0) throw ConfigError(std::string(name) + " must be > 0, found " + std::to_string(v));
  if (l.epochs <= 0 && l.max_steps <= 0) throw ConfigError("train.epochs or train.max_steps must be > 0");
  if (l.lr <= 0) throw ConfigError("train.lr must be > 0");
  return l;
}

}  // namespace

std::vector<std::string> train_config_keys() {
  std::vector<std::string> out;
  for (const auto& [table, keys] : kTableKeys)
    for (auto k : keys) out.push_back(std::string(table) + "." + std::string(k));
  return out;
}

TrainConfig train_defaults(Task task) {
  TrainConfig t;
  t.task = task;
  t.use_lora = task == Task::preference;
  t.data.options.min_responses = task == Task::sft ? 1 : 2;  // SFT also reads single-response (messages) data
  if (task == Task::reward) t.loss.preference = prefs::Preference::bt;  // pairs, as TRL's RewardTrainer
  return t;
}

TrainConfig read_train_config(const Config& c, Task task) { return read_train_config(c, train_defaults(task)); }

TrainConfig read_train_config(const Config& c, const TrainConfig& base) {
  c.check_known("", kTrainTables);
  TrainConfig t = base;
  c.check_known("rm", kRmKeys);
  t.rm_margin = c.get_double("rm.margin", base.rm_margin);
  t.model = read_model(c, base.model);
  read_lora(c, t, base);
  t.data = read_data(c, base.data);
  t.train = read_loop(c, base.train);
  t.loss = prefs::read_loss_config(c, "loss");
  if (!c.has("loss.preference")) t.loss.preference = base.loss.preference;
  t.gamma = prefs::read_gamma_schedule(c, "gamma");
  if (t.task == Task::reward) {
    if (t.loss.preference != prefs::Preference::bt && t.loss.preference != prefs::Preference::pl)
      throw ConfigError("hps train-rm: loss.preference must be bt (pairs) or pl (ranked lists), found " +
                        std::string(prefs::to_string(t.loss.preference)));
    if (t.use_lora)
      throw ConfigError("hps train-rm trains the whole model and its score head: set lora.enabled = false (LoRA "
                        "reward models need PEFT's modules_to_save for the head, not supported yet)");
  }
  if (t.task != Task::preference && t.train.ref_cache)
    throw ConfigError("train.ref_cache applies to preference training only");
  return t;
}

std::vector<std::string> ineffective_settings(const Config& c, const TrainConfig& t) {
  std::vector<std::string> out;
  auto given = [&](const std::string& table, const auto& keys, const std::string& why, const char* except = "") {
    for (std::string_view k : keys)
      if (k != except && c.has(table + "." + std::string(k))) out.push_back(table + "." + std::string(k) + ": " + why);
  };
  switch (t.task) {
    case Task::preference:
      out = prefs::ineffective_loss_keys(c, t.loss);
      if (c.has("rm.margin")) out.emplace_back("rm.margin: only hps train-rm reads it");
      break;
    case Task::sft:
      given("loss", kLossKeys, "hps sft trains on the best response of each prompt, with no preference loss");
      given("gamma", kGammaKeys, "hps sft has no preference loss");
      if (c.has("rm.margin")) out.emplace_back("rm.margin: only hps train-rm reads it");
      break;
    case Task::reward:
      given("loss", kLossKeys, "hps train-rm reads only loss.preference (bt pairs or pl lists of scores)", "preference");
      given("gamma", kGammaKeys, "hps train-rm has no hard-negative weighting");
      if (c.has("rm.margin") && t.loss.preference == prefs::Preference::pl)
        out.emplace_back("rm.margin: the PL reward-model loss has no margin (bt only)");
      break;
  }
  return out;
}

}  // namespace hps::train
