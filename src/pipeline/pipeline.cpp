#include "pipeline/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/error.hpp"
#include "demo/synth_task.hpp"
#include "eval/evaluate.hpp"
#include "generate/generate_file.hpp"
#include "generate/score_file.hpp"
#include "io/atomic_file.hpp"
#include "io/jsonl.hpp"
#include "model/load.hpp"
#include "model/model_config.hpp"
#include "model/lora.hpp"
#include "text/chat.hpp"
#include "text/tokenizer.hpp"
#include "train/preference_trainer.hpp"
#include "train/run_checkpoint.hpp"
#include "train/train_config.hpp"

namespace hps::pipeline {

namespace {

struct Settings {
  std::string dir, device, policy, tokenizer, chat_format;
  uint64_t seed = 0;
  int64_t seeds = 1;
  std::optional<demo::SynthTaskConfig> task;  // [task]: the embedded synthetic task supplies model and data
  bool sft = true, distinct = true;
  std::string sft_data, prompts, reward_path, reward_tokenizer, reward_chat_format, reward_data, test_prompts, test_data;
  int64_t sft_steps = 50, rm_steps = 50, train_steps = 50, n = 4, eval_n = 4, max_new = 64, batch = 8, train_batch = 4;
  int64_t sft_batch = 8, rm_batch = 8;
  std::string rm_preference = "bt", rm_init = "policy";
  double sft_lr = 1e-4, rm_lr = 1e-4, train_lr = 1e-5, temperature = 0.9, beta = 0.1;
  std::vector<std::string> methods{"bt", "pl", "hps"};
  std::string objective = "dpo";
  bool lora = true;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

Settings read_settings(const Config& c) {
  c.check_known("", {"run", "task", "policy", "sft", "generate", "reward", "train", "eval"});
  c.check_known("run", {"dir", "seed", "seeds", "device"});
  c.check_known("policy", {"path", "tokenizer", "chat_format"});
  c.check_known("sft", {"enabled", "data", "steps", "lr", "batch_prompts"});
  c.check_known("generate", {"prompts", "n", "temperature", "max_new_tokens", "batch_prompts", "distinct"});
  c.check_known("reward", {"path", "tokenizer", "chat_format", "data", "steps", "lr", "batch_prompts", "preference", "init"});
  c.check_known("train", {"methods", "objective", "steps", "lr", "batch_prompts", "lora", "beta"});
  c.check_known("eval", {"prompts", "test", "n"});
  Settings s;
  s.dir = c.get_string("run.dir", "");
  if (s.dir.empty()) throw ConfigError("run.dir is required");
  const bool task = c.has("task");
  const std::vector<const char*> task_keys{"policy.path", "policy.tokenizer", "policy.chat_format", "sft.data",
                                           "generate.prompts", "reward.path", "reward.tokenizer", "reward.chat_format",
                                           "reward.data", "eval.prompts", "eval.test"};
  if (task) {
    for (const char* k : task_keys)
      if (c.has(k))
        throw ConfigError(std::string(k) + " cannot be set with [task]: the synthetic task supplies the model and data");
    s.task = demo::read_synth_task_config(c);
    s.chat_format = "chatml";  // raw prompts; responses end with <|im_end|>, the tokenizer's eos
  }
  s.policy = c.get_string("policy.path", "");
  s.prompts = c.get_string("generate.prompts", "");
  s.test_prompts = c.get_string("eval.prompts", "");
  if (!task)
    for (auto [v, k] : {std::pair{&s.policy, "policy.path"}, {&s.prompts, "generate.prompts"}, {&s.test_prompts, "eval.prompts"}})
      if (v->empty()) throw ConfigError(std::string(k) + " is required (or a [task] table for the embedded task)");
  s.seed = static_cast<uint64_t>(c.get_int("run.seed", 0));
  s.seeds = c.get_int("run.seeds", 1);
  if (s.seeds < 1) throw ConfigError("run.seeds must be ≥ 1, found " + std::to_string(s.seeds));
  s.device = c.get_string("run.device", "cpu");
  s.tokenizer = c.get_string("policy.tokenizer", s.policy);
  if (!task) s.chat_format = c.get_string("policy.chat_format", "");
  s.sft = c.get_bool("sft.enabled", true);
  s.sft_data = c.get_string("sft.data", s.prompts);
  s.sft_steps = c.get_int("sft.steps", 50);
  s.sft_lr = c.get_double("sft.lr", 1e-4);
  s.sft_batch = c.get_int("sft.batch_prompts", 8);
  s.n = c.get_int("generate.n", 4);
  s.temperature = c.get_double("generate.temperature", 0.9);
  s.max_new = c.get_int("generate.max_new_tokens", 64);
  s.batch = c.get_int("generate.batch_prompts", 8);
  s.distinct = c.get_bool("generate.distinct", true);
  s.reward_path = c.get_string("reward.path", "");
  s.reward_tokenizer = c.get_string("reward.tokenizer", "");
  s.reward_chat_format = c.get_string("reward.chat_format", "");
  s.reward_data = c.get_string("reward.data", s.sft_data);
  s.rm_steps = c.get_int("reward.steps", 50);
  s.rm_lr = c.get_double("reward.lr", 1e-4);
  s.rm_batch = c.get_int("reward.batch_prompts", 8);
  s.rm_preference = c.get_string("reward.preference", "bt");
  s.rm_init = c.get_string("reward.init", "policy");
  if (s.rm_init != "policy" && s.rm_init != "sft")
    throw ConfigError("reward.init must be \"policy\" (the policy's starting weights) or \"sft\" (the SFT model, as "
                      "InstructGPT), found \"" + s.rm_init + "\"");
  s.methods = split_list(c.get_string("train.methods", "bt,pl,hps"));
  s.objective = c.get_string("train.objective", "dpo");
  s.train_steps = c.get_int("train.steps", 50);
  s.train_lr = c.get_double("train.lr", 1e-5);
  s.train_batch = c.get_int("train.batch_prompts", 4);
  s.lora = c.get_bool("train.lora", true);
  s.beta = c.get_double("train.beta", 0.1);
  s.test_data = c.get_string("eval.test", s.test_prompts);
  s.eval_n = c.get_int("eval.n", s.n);
  if (s.methods.empty()) throw ConfigError("train.methods lists no method");
  return s;
}

// Runs `body` unless RUN/<stage>/DONE exists; then writes the marker.
// Where the pipeline writes: `say` — stage lines and reports (the terminal and RUN/log.txt); `detail` —
// trainers' steps, generation and scoring progress (RUN/log.txt, plus the terminal when verbose).
struct Logs {
  std::ostream& say;
  std::ostream& detail;
};

// A stream buffer that writes to two others.
class TeeBuf : public std::streambuf {
 public:
  TeeBuf(std::ostream& a, std::ostream& b) : a_(a), b_(b) {}

 protected:
  int overflow(int c) override {
    if (c == EOF) return !EOF;
    a_.put(static_cast<char>(c)), b_.put(static_cast<char>(c));
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    a_.write(s, n), b_.write(s, n);
    return n;
  }
  int sync() override {
    a_.flush(), b_.flush();
    return 0;
  }

 private:
  std::ostream& a_;
  std::ostream& b_;
};

void stage(const std::string& dir, const std::string& name, const Logs& logs, const std::function<void()>& body) {
  std::ostream& log = logs.say;
  const std::string marker = dir + "/" + name + "/DONE";
  if (io::file_exists(marker)) {
    log << "== " << name << ": done earlier, skipped\n" << std::flush;
    return;
  }
  log << "== " << name << "\n" << std::flush;
  const auto t0 = std::chrono::steady_clock::now();
  io::make_dirs(dir + "/" + name);
  body();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  io::write_json_file(marker, {{"seconds", s}});
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f", s);
  log << "== " << name << " finished in " << secs << " s\n" << std::flush;
}

// A training run through the same recipe as `hps train | sft | train-rm`.
// The prompt budget every stage shares, so a record trains and scores on the prompt its responses were
// sampled from: each stage keeps a prompt's last `prompt_budget` tokens (generate: max_prompt_length; score,
// eval and training: max_length = twice that). 1024 tokens (GenerateJob's default), or half the policy's
// positions when it has fewer than 2048.
int64_t prompt_budget(const std::string& policy_dir) {
  return std::min<int64_t>(generate::GenerateJob{}.max_prompt_length,
                           model::read_model_config(policy_dir).max_position_embeddings / 2);
}

void train(const std::vector<std::string>& overrides, train::Task task, const Logs& logs, int64_t prompt_tokens) {
  Config c = Config::from_string("", "pipeline");
  c.set_override("data.max_prompt_length=" + std::to_string(prompt_tokens));
  c.set_override("data.max_length=" + std::to_string(2 * prompt_tokens));
  for (const auto& kv : overrides) c.set_override(kv);
  const train::TrainConfig tc = train::read_train_config(c, task);
  // One config drives several methods: a setting one of them ignores is a warning here, not an error.
  for (const auto& u : train::ineffective_settings(c, tc)) logs.say << "warning: no effect on this stage: " << u << "\n";
  train::PreferenceTrainer t(tc, c.dump());
  t.run(/*resume=*/true, logs.detail);
}

// A number as an override value, exactly (std::to_string would print 5e-7 as 0.000000).
std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

// What training cost: the stage's wall time and the responses forwarded per prompt per step (from the run's
// metrics.jsonl) — BT and HPS forward 2, PL all K.
nlohmann::json training_cost(const std::string& stage_dir) {
  nlohmann::json out = {{"seconds", io::read_json_file(stage_dir + "/DONE").value("seconds", 0.0)}};
  int64_t prompts = 0, responses = 0;
  io::for_each_jsonl(stage_dir + "/run/metrics.jsonl", [&](int64_t, const nlohmann::json& j) {
    for (const auto& r : j.value("responses", nlohmann::json::array())) ++prompts, responses += static_cast<int64_t>(r.size());
  });
  if (prompts > 0) out["responses_per_prompt"] = static_cast<double>(responses) / static_cast<double>(prompts);
  return out;
}

// Keeps each distinct response once per prompt. Identical samples get identical rewards, so a duplicate of
// the best response would also be a dispreferred one — a pair with margin 0 by construction that no loss can
// separate (and exactly the "hardest negative" HPS would focus on). A prompt left with one distinct
// response has no pair; the trainer reports it as a bad record and skips it.
void distinct_responses(const std::string& in, const std::string& out, std::ostream& log) {
  int64_t prompts = 0, removed = 0, single = 0;
  io::write_file_atomic(out, [&](std::ostream& o) {
    io::for_each_jsonl(in, [&](int64_t, nlohmann::json j) {
      std::vector<std::string> kept;
      for (const auto& r : j.at("responses")) {
        const auto y = r.get<std::string>();
        if (std::find(kept.begin(), kept.end(), y) == kept.end()) kept.push_back(y);
        else ++removed;
      }
      ++prompts, single += kept.size() < 2;
      j["responses"] = kept;
      o << j.dump() << "\n";
    });
  });
  log << "annotate: " << removed << " duplicate responses removed from " << prompts << " prompts; " << single
      << " prompts have a single distinct response (no pair: preference training skips them)\n";
}

std::string latest(const std::string& dir) {
  auto p = train::latest_checkpoint(dir);
  if (!p) throw InternalError("no complete checkpoint in " + dir);
  return *p;
}

// One seed of the pipeline in s.dir; returns the evaluated runs (name, eval folder) in table order.
std::vector<eval::NamedDir> run_one(Settings s, const Logs& logs, bool report_to_say) {
  std::ostream& log = logs.detail;
  io::make_dirs(s.dir);
  // 0. The embedded task: tokenizer, random-init model and data files, from the seed.
  if (s.task) {
    stage(s.dir, "task", logs, [&] {
      demo::SynthTaskConfig t = *s.task;
      t.seed = s.seed;
      demo::write_synth_task(t, s.dir + "/task");
    });
    const std::string t = s.dir + "/task";
    s.policy = t + "/base", s.tokenizer = t + "/tokenizer", s.sft_data = t + "/sft.jsonl", s.prompts = t + "/train.jsonl";
    s.reward_data = t + "/rm.jsonl", s.test_prompts = t + "/test.jsonl", s.test_data = t + "/test.jsonl";
  }
  const auto tok = text::Tokenizer::from_dir(s.tokenizer);
  const int64_t prompt_tokens = prompt_budget(s.policy);
  const text::ChatTemplate chat = text::choose_chat_template(tok.config().chat_template, s.chat_format);
  const std::string dev = "model.device=" + s.device, seed = "train.seed=" + std::to_string(s.seed);
  const std::string chat_kv = "data.chat_format=" + std::string(text::to_string(chat.format));

  // 1. SFT on the best responses of the SFT data.
  stage(s.dir, "sft", logs, [&] {
    if (!s.sft) return;
    train({"model.path=" + s.policy, "model.tokenizer=" + s.tokenizer, "data.path=" + s.sft_data, chat_kv, dev, seed,
           "train.out_dir=" + s.dir + "/sft/run", "train.max_steps=" + std::to_string(s.sft_steps),
           "train.lr=" + num(s.sft_lr), "train.batch_prompts=" + std::to_string(s.sft_batch),
           "data.on_bad_record=skip", "train.warmup_ratio=0.0"},
          train::Task::sft, logs, prompt_tokens);
  });
  const std::string sft_model = s.sft ? latest(s.dir + "/sft/run") + "/model" : s.policy;
  const model::LoadOptions lo{at::Device(s.device), std::nullopt};

  auto generate_with = [&](const std::string& model_dir, const std::string& adapter, const std::string& prompts,
                           const std::string& out, int64_t n, uint64_t sd) {
    model::Decoder m = model::load_model(model_dir, lo);
    if (!adapter.empty()) model::load_lora(m, adapter);
    generate::GenerateJob job;
    job.data = prompts, job.out = out, job.batch_prompts = s.batch, job.max_prompt_length = prompt_tokens;
    job.sampling.n = n, job.sampling.temperature = s.temperature, job.sampling.max_new_tokens = s.max_new;
    job.sampling.seed = sd;
    generate::generate_file(m, tok, chat, job, log);
  };

  // 2. K responses per training prompt from the SFT model.
  stage(s.dir, "generate", logs, [&] { generate_with(sft_model, "", s.prompts, s.dir + "/generate/responses.jsonl", s.n, s.seed); });

  // 3. The reward model: given, or trained on preference pairs.
  stage(s.dir, "reward", logs, [&] {
    if (!s.reward_path.empty()) return;
    const std::string init = s.rm_init == "sft" ? sft_model : s.policy;
    train({"model.path=" + init, "model.tokenizer=" + s.tokenizer, "data.path=" + s.reward_data, chat_kv, dev, seed,
           "train.out_dir=" + s.dir + "/reward/run", "train.max_steps=" + std::to_string(s.rm_steps),
           "train.lr=" + num(s.rm_lr), "train.batch_prompts=" + std::to_string(s.rm_batch),
           "loss.preference=" + s.rm_preference, "data.on_bad_record=skip", "lora.enabled=false", "train.warmup_ratio=0.0"},
          train::Task::reward, logs, prompt_tokens);
  });
  const std::string rm_dir = s.reward_path.empty() ? latest(s.dir + "/reward/run") + "/model" : s.reward_path;
  // A given reward model scores with its own tokenizer and chat format (it may be another family than the
  // policy); one trained here shares the policy's.
  std::optional<text::Tokenizer> rm_tok;
  text::ChatTemplate rm_chat = chat;
  if (!s.reward_path.empty()) {
    rm_tok = text::Tokenizer::from_dir(s.reward_tokenizer.empty() ? rm_dir : s.reward_tokenizer);
    rm_chat = text::choose_chat_template(rm_tok->config().chat_template, s.reward_chat_format);
  }
  auto score = [&](const std::string& file) {
    const model::Decoder rm = model::load_model(rm_dir, lo);
    generate::ScoreJob job{file, file, 16, 2 * prompt_tokens, 256};
    generate::score_file(rm, rm_tok ? *rm_tok : tok, rm_chat, job, log);
  };

  // 4. Annotate the generated responses.
  stage(s.dir, "annotate", logs, [&] {
    if (s.distinct) distinct_responses(s.dir + "/generate/responses.jsonl", s.dir + "/annotate/ranked.jsonl", logs.say);
    else io::copy_file(s.dir + "/generate/responses.jsonl", s.dir + "/annotate/ranked.jsonl");
    score(s.dir + "/annotate/ranked.jsonl");
  });

  // 5. Each preference method from the same SFT model with the same budget.
  for (const auto& method : s.methods)
    stage(s.dir, "train_" + method, logs, [&] {
      train({"model.path=" + sft_model, "model.tokenizer=" + s.tokenizer, "data.path=" + s.dir + "/annotate/ranked.jsonl",
             chat_kv, dev, seed, "train.out_dir=" + s.dir + "/train_" + method + "/run",
             "train.max_steps=" + std::to_string(s.train_steps), "train.lr=" + num(s.train_lr),
             "train.batch_prompts=" + std::to_string(s.train_batch), "loss.preference=" + method,
             "loss.objective=" + s.objective, "loss.beta=" + num(s.beta),
             std::string("lora.enabled=") + (s.lora ? "true" : "false"), "data.on_bad_record=skip"},
            train::Task::preference, logs, prompt_tokens);
    });

  // 6. Generate on the test prompts with every model, score, evaluate against the SFT model.
  std::vector<eval::NamedDir> runs;
  auto evaluate = [&](const std::string& name, const std::string& model_dir, const std::string& adapter) {
    const std::string d = s.dir + "/eval_" + name;
    stage(s.dir, "eval_" + name, logs, [&] {
      generate_with(model_dir, adapter, s.test_prompts, d + "/generations.jsonl", s.eval_n, s.seed + 1000);
      score(d + "/generations.jsonl");
      eval::EvalJob job;
      job.generations = d + "/generations.jsonl";
      if (name != "sft") job.baseline = s.dir + "/eval_sft/generations.jsonl", job.baseline_name = "sft";
      job.test = s.test_data;
      job.policy = model_dir, job.adapter = adapter, job.reference = sft_model, job.tokenizer = s.tokenizer;
      job.chat_format = text::to_string(chat.format);
      job.device = s.device, job.name = name, job.out = d, job.max_prompt_length = prompt_tokens;
      if (name != "sft" || s.sft)  // a given policy (sft.enabled = false) has no training cost here
        job.extra = {{"training", training_cost(s.dir + "/" + (name == "sft" ? std::string("sft") : "train_" + name))}};
      if (s.task)
        job.oracle = [](const nlohmann::json& prompt, const std::string& y) {
          // The ranked reader keeps a text prompt as one user message.
          const auto v = demo::oracle_reward(prompt.is_array() ? prompt.back().value("content", "") : prompt.get<std::string>(), y);
          return eval::OracleVerdict{v.reward, v.harmful, v.exact};
        };
      eval::run_eval(job, log);
    });
    runs.emplace_back(name, d);
  };
  evaluate("sft", sft_model, "");
  for (const auto& method : s.methods) {
    const std::string ck = latest(s.dir + "/train_" + method + "/run");
    if (s.lora) evaluate(method, sft_model, ck + "/adapter");
    else evaluate(method, ck + "/model", "");
  }

  // 7. One report.
  logs.say << "== report\n";
  eval::combine_reports(runs, s.dir + "/report", report_to_say ? logs.say : logs.detail);
  logs.say << "report: " << s.dir << "/report/report.md\n" << std::flush;
  return runs;
}

}  // namespace

void run_pipeline(const Config& cfg, std::ostream& out, bool verbose) {
  const Settings s = read_settings(cfg);
  io::make_dirs(s.dir);
  io::write_file_atomic(s.dir + "/config.toml", [&](std::ostream& o) { o << cfg.dump() << "\n"; });
  std::ofstream file(s.dir + "/log.txt", std::ios::app);
  if (!file) throw InputError(s.dir + "/log.txt: cannot open for writing");
  TeeBuf say_buf(out, file), detail_buf(out, file);
  std::ostream say(&say_buf), tee(&detail_buf);
  const Logs logs{say, verbose ? tee : file};
  say << "hps pipeline: " << s.dir << " (progress of every stage: " << s.dir << "/log.txt)\n";
  if (s.seeds == 1) {
    run_one(s, logs, true);
    return;
  }
  // Several seeds: the whole pipeline (task included) once per seed in RUN/seed-N, then mean ± sd.
  std::vector<std::pair<std::string, std::vector<eval::NamedDir>>> all;
  for (int64_t i = 0; i < s.seeds; ++i) {
    Settings si = s;
    si.seed = s.seed + static_cast<uint64_t>(i);
    si.dir = s.dir + "/seed-" + std::to_string(si.seed);
    say << "=== seed " << si.seed << " (" << i + 1 << " of " << s.seeds << ")\n";
    all.emplace_back("seed " + std::to_string(si.seed), run_one(si, logs, false));
  }
  say << "=== report over " << s.seeds << " seeds\n";
  eval::aggregate_seed_reports(all, s.dir + "/report", say);
  say << "report: " << s.dir << "/report/report.md\n" << std::flush;
}

}  // namespace hps::pipeline
