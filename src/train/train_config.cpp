#include "train/train_config.hpp"


#include "core/config_schema.hpp"
#include "core/enum_names.hpp"
#include "core/error.hpp"
#include "io/hf_hub.hpp"
#include "prefs/config_io.hpp"

namespace hps::train {

namespace {
constexpr EnumNames<Task, 3> kTasks{{{"preference", Task::preference}, {"sft", Task::sft}, {"reward", Task::reward}}};
}  // namespace

const char* to_string(Task t) { return enum_name(t, kTasks).data(); }  // the table's names are literals

namespace {

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

// An enum field's parser for TableSchema::name: (text, full key) → value.
template <auto Parse>
auto by_name() {
  return [](const std::string& s, const std::string& key) { return Parse(s, key); };
}

// Each table's keys, declared once: check_known, the reader, train_config_keys() and the ineffective-settings
// rule all use these. A key not given keeps the base config's value.
const TableSchema<ModelSettings>& model_schema() {
  static const TableSchema<ModelSettings> s =
      TableSchema<ModelSettings>("model")
          .add("path", &ModelSettings::path, required("a Hugging Face model folder"))
          .add("tokenizer", &ModelSettings::tokenizer)
          .add("dtype", &ModelSettings::dtype)
          .add("device", &ModelSettings::device)
          .add("grad_checkpointing", &ModelSettings::grad_checkpointing)
          .add("autocast", &ModelSettings::autocast, Rule<std::string>([](const std::string& key, const std::string& v) {
                 if (!v.empty() && v != "bfloat16" && v != "float16")
                   throw ConfigError(key + " '" + v + "': expected bfloat16 or float16 (or empty for none)");
               }));
  return s;
}

const TableSchema<TrainConfig>& lora_schema() {
  static const TableSchema<TrainConfig> s =
      TableSchema<TrainConfig>("lora")
          .add("enabled", &TrainConfig::use_lora)
          .add("rank", [](TrainConfig& t) -> int64_t& { return t.lora.rank; })
          .add("alpha", [](TrainConfig& t) -> double& { return t.lora.alpha; })
          .add("dropout", [](TrainConfig& t) -> double& { return t.lora.dropout; })
          .custom("targets", [](const Config& c, const std::string& key, TrainConfig& t) {
                    if (c.has(key)) t.lora.targets = split_commas(c.get_string(key, ""));
                  },
                  [](const TrainConfig& t) {
                    std::string joined;
                    for (const auto& x : t.lora.targets) joined += (joined.empty() ? "" : ",") + x;
                    return toml_string(joined);
                  })
          .add("rslora", [](TrainConfig& t) -> bool& { return t.lora.rslora; });
  return s;
}

const TableSchema<DataSettings>& data_schema() {
  static const TableSchema<DataSettings> s =
      TableSchema<DataSettings>("data")
          .add("path", &DataSettings::path, required("a .jsonl or .jsonl.gz dataset"))
          .name("format", [](DataSettings& d) -> auto& { return d.options.format; }, by_name<data::parse_format>())
          .name("on_bad_record", [](DataSettings& d) -> auto& { return d.options.on_bad_record; },
                by_name<data::parse_on_bad_record>())
          .name("pku_ranking", [](DataSettings& d) -> auto& { return d.options.pku_ranking; },
                by_name<data::parse_pku_ranking>())
          .add("allow_empty_responses", [](DataSettings& d) -> bool& { return d.options.allow_empty_responses; })
          .add("chat_format", &DataSettings::chat_format)
          .add("max_prompt_length", &DataSettings::max_prompt_length)
          .add("max_length", &DataSettings::max_length)
          .add("eval_fraction", &DataSettings::eval_fraction, Rule<double>([](const std::string& key, double v) {
                 if (v < 0 || v >= 1) throw ConfigError(key + " must be in [0, 1)");
               }));
  return s;
}

const TableSchema<LoopSettings>& loop_schema() {
  using L = LoopSettings;
  static const TableSchema<L> s =
      TableSchema<L>("train")
          .add("epochs", &L::epochs, at_least<int64_t>(0))
          .add("max_steps", &L::max_steps, at_least<int64_t>(0))
          .add("batch_prompts", &L::batch_prompts, positive<int64_t>())
          .add("grad_accum", &L::grad_accum, positive<int64_t>())
          .add("lr", &L::lr, positive<double>())
          .name("schedule", &L::schedule, [](const std::string& v, const std::string&) { return parse_schedule(v); })
          .add("warmup_ratio", &L::warmup_ratio, probability())
          .add("beta1", [](L& l) -> double& { return l.adamw.beta1; }, in_half_open(0.0, 1.0))
          .add("beta2", [](L& l) -> double& { return l.adamw.beta2; }, in_half_open(0.0, 1.0))
          .add("eps", [](L& l) -> double& { return l.adamw.eps; }, positive<double>())
          .add("weight_decay", [](L& l) -> double& { return l.adamw.weight_decay; }, at_least(0.0))
          .add("max_grad_norm", &L::max_grad_norm, at_least(0.0))  // 0: no clipping
          .add("seed", &L::seed)
          .add("out_dir", &L::out_dir, required("the folder for checkpoints and metrics"))
          .add("save_every", &L::save_every, at_least<int64_t>(0))
          .add("keep_last", &L::keep_last, positive<int64_t>())
          .add("eval_every", &L::eval_every, at_least<int64_t>(0))
          .add("max_bad_steps", &L::max_bad_steps, positive<int64_t>())
          .add("stop_after", &L::stop_after, at_least<int64_t>(0))
          .custom("ref_cache", [](const Config& c, const std::string& key, L& l) {
            if (!c.has(key)) return;
            std::string v;
            try {
              v = c.get_bool(key, false) ? "true" : "false";
            } catch (const ConfigError&) {
              v = c.get_string(key, "");
            }
            if (v != "true" && v != "false" && v != "auto")
              throw ConfigError(key + " must be true, false or \"auto\", found \"" + v + "\"");
            l.ref_cache = v == "auto" ? RefCacheMode::automatic : v == "true" ? RefCacheMode::on : RefCacheMode::off;
          },
          [](const L& l) -> std::string {
            return l.ref_cache == RefCacheMode::automatic ? toml_string("auto") : l.ref_cache == RefCacheMode::on ? "true" : "false";
          })
          .add("packing", &L::packing)
          .add("ddp_bucket_cap_mb", &L::ddp_bucket_cap_mb, at_least(0.0))
          .add("max_tokens_per_micro_batch", &L::max_tokens_per_micro_batch, Rule<int64_t>([](const std::string& key, int64_t v) {
                 if (v < 0) throw ConfigError(key + " must be >= 0 (0: no limit), found " + std::to_string(v));
               }));
  return s;
}

const TableSchema<TrainConfig>& rm_schema() {
  static const TableSchema<TrainConfig> s = TableSchema<TrainConfig>("rm").add("margin", &TrainConfig::rm_margin);
  return s;
}

// "table.key" for every key of a schema.
template <typename S>
void append_keys(const TableSchema<S>& s, std::vector<std::string>& out) {
  for (auto k : s.keys()) out.push_back(s.table() + "." + std::string(k));
}

}  // namespace

std::vector<std::string> train_config_keys() {
  std::vector<std::string> out;
  append_keys(model_schema(), out), append_keys(lora_schema(), out), append_keys(data_schema(), out);
  append_keys(loop_schema(), out), append_keys(prefs::loss_schema(), out), append_keys(prefs::gamma_schema(), out);
  append_keys(rm_schema(), out);
  return out;
}

void write_train_config(const TrainConfig& t, std::ostream& out) {
  model_schema().write(t.model, out);
  out << "\n";
  lora_schema().write(t, out);
  out << "\n";
  data_schema().write(t.data, out);
  out << "\n";
  loop_schema().write(t.train, out);
  out << "\n";
  prefs::loss_schema().write(t.loss, out);
  out << "\n";
  prefs::gamma_schema().write(t.gamma, out);
  out << "\n";
  rm_schema().write(t, out);
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
  rm_schema().read(c, t);
  model_schema().read(c, t.model);
  t.model.path = io::resolve_model_dir(t.model.path);  // a local folder, or a hub id found in the HF cache
  if (!c.has("model.tokenizer") && base.model.tokenizer.empty()) t.model.tokenizer = t.model.path;
  else if (c.has("model.tokenizer")) t.model.tokenizer = io::resolve_model_dir(t.model.tokenizer);
  if (!t.model.autocast.empty() && !t.model.dtype.empty() && t.model.dtype != "float32")
    throw ConfigError("model.autocast needs float32 weights (model.dtype = float32), found model.dtype = " + t.model.dtype);
  lora_schema().read(c, t);
  t.lora.base_model = t.model.path;
  data_schema().read(c, t.data);
  loop_schema().read(c, t.train);
  if (t.train.epochs <= 0 && t.train.max_steps <= 0) throw ConfigError("train.epochs or train.max_steps must be > 0");
  t.loss = prefs::read_loss_config(c, "loss", base.loss);
  t.gamma = prefs::read_gamma_schedule(c, "gamma", base.gamma);
  if (t.task == Task::reward) {
    if (t.loss.preference != prefs::Preference::bt && t.loss.preference != prefs::Preference::pl)
      throw ConfigError("hps train-rm: loss.preference must be bt (pairs) or pl (ranked lists), found " +
                        std::string(prefs::to_string(t.loss.preference)));
    if (t.use_lora)
      throw ConfigError("hps train-rm trains the whole model and its score head: set lora.enabled = false (LoRA "
                        "reward models need PEFT's modules_to_save for the head, not supported yet)");
  }
  if (t.task != Task::preference && t.train.ref_cache == RefCacheMode::on)
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
      given("loss", prefs::loss_schema().keys(), "hps sft trains on the best response of each prompt, with no preference loss");
      given("gamma", prefs::gamma_schema().keys(), "hps sft has no preference loss");
      if (c.has("rm.margin")) out.emplace_back("rm.margin: only hps train-rm reads it");
      break;
    case Task::reward:
      given("loss", prefs::loss_schema().keys(), "hps train-rm reads only loss.preference (bt pairs or pl lists of scores)", "preference");
      given("gamma", prefs::gamma_schema().keys(), "hps train-rm has no hard-negative weighting");
      if (c.has("rm.margin") && t.loss.preference == prefs::Preference::pl)
        out.emplace_back("rm.margin: the PL reward-model loss has no margin (bt only)");
      break;
  }
  return out;
}

}  // namespace hps::train
