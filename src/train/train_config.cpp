#include "train/train_config.hpp"

#include "core/error.hpp"
#include "prefs/config_io.hpp"

namespace hps::train {

const char* to_string(Task t) {
  switch (t) {
    case Task::preference: return "preference";
    case Task::sft: return "sft";
    case Task::reward: return "reward";
  }
  return "?";
}

TrainConfig read_train_config(const Config& c, Task task) {
  c.check_known("", {"model", "lora", "data", "train", "loss", "gamma", "rm"});
  TrainConfig t;
  t.task = task;
  c.check_known("rm", {"margin"});
  t.rm_margin = c.get_double("rm.margin", 0.0);
  c.check_known("model", {"path", "tokenizer", "dtype", "device", "grad_checkpointing", "autocast"});
  t.model.path = c.get_string("model.path", "");
  if (t.model.path.empty()) throw ConfigError("model.path is required (a Hugging Face model folder)");
  t.model.tokenizer = c.get_string("model.tokenizer", t.model.path);
  t.model.dtype = c.get_string("model.dtype", "");
  t.model.device = c.get_string("model.device", "cpu");
  t.model.grad_checkpointing = c.get_bool("model.grad_checkpointing", false);
  t.model.autocast = c.get_string("model.autocast", "");
  if (!t.model.autocast.empty() && t.model.autocast != "bfloat16" && t.model.autocast != "float16")
    throw ConfigError("model.autocast '" + t.model.autocast + "': expected bfloat16 or float16 (or empty for none)");
  if (!t.model.autocast.empty() && !t.model.dtype.empty() && t.model.dtype != "float32")
    throw ConfigError("model.autocast needs float32 weights (model.dtype = float32), found model.dtype = " + t.model.dtype);

  c.check_known("lora", {"enabled", "rank", "alpha", "dropout", "targets", "rslora"});
  // The paper trains with LoRA; SFT and reward models default to full fine-tuning as TRL's trainers do.
  t.use_lora = c.get_bool("lora.enabled", task == Task::preference);
  t.lora.rank = c.get_int("lora.rank", 8);
  t.lora.alpha = c.get_double("lora.alpha", 16.0);
  t.lora.dropout = c.get_double("lora.dropout", 0.05);
  t.lora.rslora = c.get_bool("lora.rslora", false);
  if (c.has("lora.targets")) {
    // Comma-separated list: "q_proj,v_proj".
    const std::string s = c.get_string("lora.targets", "");
    t.lora.targets.clear();
    size_t b = 0;
    while (b <= s.size()) {
      const size_t e = s.find(',', b);
      const std::string name = s.substr(b, e == std::string::npos ? std::string::npos : e - b);
      if (!name.empty()) t.lora.targets.push_back(name);
      if (e == std::string::npos) break;
      b = e + 1;
    }
  }
  t.lora.base_model = t.model.path;

  c.check_known("data", {"path", "format", "on_bad_record", "pku_ranking", "allow_empty_responses", "chat_format",
                         "max_prompt_length", "max_length", "eval_fraction"});
  t.data.path = c.get_string("data.path", "");
  if (t.data.path.empty()) throw ConfigError("data.path is required (a .jsonl or .jsonl.gz dataset)");
  t.data.options.format = data::parse_format(c.get_string("data.format", "auto"));
  t.data.options.on_bad_record = data::parse_on_bad_record(c.get_string("data.on_bad_record", "error"));
  t.data.options.pku_ranking = data::parse_pku_ranking(c.get_string("data.pku_ranking", "helpful"));
  t.data.options.allow_empty_responses = c.get_bool("data.allow_empty_responses", false);
  t.data.options.min_responses = task == Task::sft ? 1 : 2;  // SFT also reads single-response (messages) data
  t.data.chat_format = c.get_string("data.chat_format", "");
  t.data.max_prompt_length = c.get_int("data.max_prompt_length", 512);
  t.data.max_length = c.get_int("data.max_length", 1024);
  t.data.eval_fraction = c.get_double("data.eval_fraction", 0.0);
  if (t.data.eval_fraction < 0 || t.data.eval_fraction >= 1) throw ConfigError("data.eval_fraction must be in [0, 1)");

  c.check_known("train", {"epochs", "max_steps", "batch_prompts", "grad_accum", "lr", "schedule", "warmup_ratio",
                          "beta1", "beta2", "eps", "weight_decay", "max_grad_norm", "seed", "out_dir", "save_every",
                          "keep_last", "eval_every", "max_bad_steps", "stop_after", "ref_cache"});
  auto& l = t.train;
  l.epochs = c.get_int("train.epochs", 2);
  l.max_steps = c.get_int("train.max_steps", 0);
  l.batch_prompts = c.get_int("train.batch_prompts", 8);
  l.grad_accum = c.get_int("train.grad_accum", 1);
  l.lr = c.get_double("train.lr", 5e-7);
  l.schedule = parse_schedule(c.get_string("train.schedule", "cosine"));
  l.warmup_ratio = c.get_double("train.warmup_ratio", 0.1);
  l.adamw = {c.get_double("train.beta1", 0.9), c.get_double("train.beta2", 0.999), c.get_double("train.eps", 1e-8),
             c.get_double("train.weight_decay", 0.0)};
  l.max_grad_norm = c.get_double("train.max_grad_norm", 1.0);
  l.seed = static_cast<uint64_t>(c.get_int("train.seed", 0));
  l.out_dir = c.get_string("train.out_dir", "runs/hps");
  l.save_every = c.get_int("train.save_every", 0);
  l.keep_last = c.get_int("train.keep_last", 2);
  l.eval_every = c.get_int("train.eval_every", 0);
  l.max_bad_steps = c.get_int("train.max_bad_steps", 5);
  l.stop_after = c.get_int("train.stop_after", 0);
  l.ref_cache = c.get_bool("train.ref_cache", false);
  for (auto [v, name] : {std::pair{l.batch_prompts, "train.batch_prompts"}, {l.grad_accum, "train.grad_accum"},
                         {l.keep_last, "train.keep_last"}, {l.max_bad_steps, "train.max_bad_steps"}})
    if (v <= 0) throw ConfigError(std::string(name) + " must be > 0, found " + std::to_string(v));
  if (l.epochs <= 0 && l.max_steps <= 0) throw ConfigError("train.epochs or train.max_steps must be > 0");
  if (l.lr <= 0) throw ConfigError("train.lr must be > 0");

  t.loss = prefs::read_loss_config(c, "loss");
  t.gamma = prefs::read_gamma_schedule(c, "gamma");
  if (task == Task::reward) {
    if (!c.has("loss.preference")) t.loss.preference = prefs::Preference::bt;  // pairs, as TRL's RewardTrainer
    if (t.loss.preference != prefs::Preference::bt && t.loss.preference != prefs::Preference::pl)
      throw ConfigError("hps train-rm: loss.preference must be bt (pairs) or pl (ranked lists), found " +
                        std::string(prefs::to_string(t.loss.preference)));
    if (t.use_lora)
      throw ConfigError("hps train-rm trains the whole model and its score head: set lora.enabled = false (LoRA "
                        "reward models need PEFT's modules_to_save for the head, not supported yet)");
  }
  if (task != Task::preference && t.train.ref_cache)
    throw ConfigError("train.ref_cache applies to preference training only");
  return t;
}

std::vector<std::string> ineffective_settings(const Config& c, const TrainConfig& t) {
  static constexpr const char* kLossKeys[] = {"preference", "objective", "beta", "pair_rule", "n_factor",
                                              "label_smoothing", "robust", "exo_epsilon", "simpo_margin",
                                              "rdpo_alpha", "multi_preferred", "multi_lambda", "ties"};
  static constexpr const char* kGammaKeys[] = {"schedule", "start", "end", "interval"};
  std::vector<std::string> out;
  auto given = [&](const std::string& table, const auto& keys, const std::string& why, const char* except = "") {
    for (const char* k : keys)
      if (std::string(k) != except && c.has(table + "." + k)) out.push_back(table + "." + k + ": " + why);
  };
  switch (t.task) {
    case Task::preference:
      out = prefs::ineffective_loss_keys(c, t.loss);
      if (c.has("rm.margin")) out.push_back("rm.margin: only hps train-rm reads it");
      break;
    case Task::sft:
      given("loss", kLossKeys, "hps sft trains on the best response of each prompt, with no preference loss");
      given("gamma", kGammaKeys, "hps sft has no preference loss");
      if (c.has("rm.margin")) out.push_back("rm.margin: only hps train-rm reads it");
      break;
    case Task::reward:
      given("loss", kLossKeys, "hps train-rm reads only loss.preference (bt pairs or pl lists of scores)", "preference");
      given("gamma", kGammaKeys, "hps train-rm has no hard-negative weighting");
      if (c.has("rm.margin") && t.loss.preference == prefs::Preference::pl)
        out.push_back("rm.margin: the PL reward-model loss has no margin (bt only)");
      break;
  }
  return out;
}

}  // namespace hps::train
