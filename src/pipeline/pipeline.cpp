#include "pipeline/pipeline.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/seed.hpp"
#include "core/error.hpp"
#include "dist/world.hpp"
#include "eval/evaluate.hpp"
#include "eval/report.hpp"
#include "generate/generate_file.hpp"
#include "generate/score_file.hpp"
#include "io/atomic_file.hpp"
#include "io/jsonl.hpp"
#include "model/load.hpp"
#include "model/lora.hpp"
#include "model/model_config.hpp"
#include "pipeline/eval_stage.hpp"
#include "pipeline/pipeline_config.hpp"
#include "pipeline/stage.hpp"
#include "text/chat.hpp"
#include "text/text_setup.hpp"
#include "text/tokenizer.hpp"
#include "train/preference_trainer.hpp"
#include "train/run_checkpoint.hpp"
#include "train/train_log.hpp"

namespace hps::pipeline {

namespace {

using Settings = std::map<std::string, std::string>;

// One seed's run: the config, where it writes, and what the task (or the file) supplies.
struct SeedRun {
  const PipelineConfig& p;
  const Logs& logs;
  std::string dir;
  uint64_t seed = 0;
  TaskFiles files;        // the policy and the data
  Oracle oracle;
  int64_t prompt_tokens = 1024;  // [data] max_prompt_length or the default budget
  Settings derived;       // what every stage records beside its own keys: seed, device, chat format, budget
};

// The prompt budget every stage shares, so a record trains and scores on the prompt its responses were sampled
// from: 1024 tokens (GenerateJob's default), or half the policy's positions when it has fewer than 2048.
int64_t default_prompt_budget(const std::string& policy_dir) {
  return std::min<int64_t>(generate::GenerateJob{}.max_prompt_length,
                           model::read_model_config(policy_dir).max_position_embeddings / 2);
}

// The keys of `table` in `cfg` under their full names ("generate.n").
Settings table_settings(const Config& cfg, const std::string& table) {
  Settings out;
  for (auto& [k, v] : cfg.flatten(table)) out[table + "." + k] = v;
  return out;
}

// A stage's record: its own settings, the seed's derived ones, and the digests of the paths it reads.
StageKey stage_key(const SeedRun& r, Settings settings, std::initializer_list<std::pair<const char*, std::string>> inputs) {
  StageKey k{std::move(settings), {}};
  k.settings.insert(r.derived.begin(), r.derived.end());
  for (const auto& [name, path] : inputs)
    if (!path.empty()) k.inputs[name] = input_digest(r.dir, path);
  return k;
}

std::string latest(const std::string& dir) {
  auto p = train::latest_checkpoint(dir);
  if (!p) throw InternalError("no complete checkpoint in " + dir);
  return *p;
}

// Runs a training stage's trainer to its last step (resuming from the stage's checkpoints).
void run_trainer(const TrainStage& s, const std::string& name, const Logs& logs) {
  // One config drives several methods: a setting one of them ignores is a warning here, not an error.
  for (const auto& u : train::ineffective_settings(s.view, s.config)) logs.say << "warning: no effect on this stage: " << u << "\n";
  train::PreferenceTrainer t(s.config, s.view.dump());
  t.run(/*resume=*/true, logs.detail);
  // A run stopped early (train.stop_after) must not be marked DONE: the next run resumes it.
  const std::string last = latest(s.config.train.out_dir);
  if (last != train::checkpoint_path(s.config.train.out_dir, t.total_steps()))
    throw ConfigError(name + " stopped before its last step (" + std::to_string(t.total_steps()) +
                      ") at train.stop_after, saved in " + last + ": rerun to continue from there");
}

// A training stage in r.dir/name/run: its TrainConfig from the file (stage_train_config) and `in`.
void train_stage(const SeedRun& r, const std::string& name, const std::string& stage, TrainInputs in) {
  in.out_dir = r.dir + "/" + name + "/run";
  const TrainStage s = stage_train_config(r.p, stage, in);
  Settings settings = s.view.flatten();
  for (const auto k : train::kRunControlKeys) settings.erase(std::string(k));
  run_stage(r.dir, name, stage_key(r, std::move(settings), {{"model", in.model}, {"tokenizer", in.tokenizer}, {"data", in.data}}),
            r.logs, [&] { run_trainer(s, name, r.logs); });
}

// What training cost: the stage's wall time and the responses forwarded per prompt per step (BT and HPS
// forward 2, PL all K).
eval::TrainingCost training_cost(const std::string& stage_dir) {
  return {stage_seconds(stage_dir), train::read_train_summary(stage_dir + "/run").responses_per_prompt()};
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

// The models the generation, scoring and evaluation stages use, loaded on the run's device.
struct Models {
  const SeedRun& r;
  text::Tokenizer tok;
  text::ChatTemplate chat;
  std::string sft_model, rm_dir;
  std::optional<text::Tokenizer> rm_tok;  // a given reward model's own; empty: the policy's
  text::ChatTemplate rm_chat;

  model::LoadOptions load() const { return {dist::local_device(r.p.run.device), std::nullopt}; }

  void generate(const std::string& model_dir, const std::string& adapter, const std::string& prompts,
                const std::string& out, int64_t n, uint64_t seed, int64_t prompt_tokens) const {
    const model::Decoder m = model::load_policy(model_dir, adapter, load());
    const auto& g = r.p.generate;
    generate::GenerateJob job;
    job.data = prompts, job.out = out, job.batch_prompts = g.batch_prompts, job.max_prompt_length = prompt_tokens;
    job.sampling.n = n, job.sampling.temperature = g.temperature, job.sampling.max_new_tokens = g.max_new_tokens;
    job.sampling.seed = seed;
    generate::generate_file(m, tok, chat, job, r.logs.detail);
  }

  // Scores `file` in place; the prompt keeps its last `prompt_tokens` tokens, as it was generated from.
  void score(const std::string& file, int64_t prompt_tokens) const {
    const model::Decoder rm = model::load_model(rm_dir, load());
    generate::ScoreJob job{file, file, 16, 2 * prompt_tokens, 256};
    generate::score_file(rm, rm_tok ? *rm_tok : tok, rm_chat, job, r.logs.detail);
  }
};

// Generates on the test prompts with one model, scores, and evaluates against the SFT model.
eval::NamedDir evaluate(const SeedRun& r, const Models& m, const std::string& name, const std::string& model_dir,
                        const std::string& adapter) {
  const std::string d = r.dir + "/eval_" + name, train_dir = r.dir + "/" + (name == "sft" ? std::string("sft") : "train_" + name);
  const std::string baseline = name == "sft" ? "" : r.dir + "/eval_sft/generations.jsonl";
  const int64_t prompt_tokens = r.p.eval.max_prompt_length > 0 ? r.p.eval.max_prompt_length : r.prompt_tokens;
  Settings settings = table_settings(r.p.file, "eval");
  settings.merge(table_settings(r.p.file, "generate"));
  // Without [task], evaluation samples eval.prompts and measures against eval.test; a task's test file is both.
  const std::string test = r.p.task ? r.files.test : r.p.eval.test;
  const StageKey key = stage_key(r, std::move(settings), {{"model", model_dir}, {"adapter", adapter}, {"reward", m.rm_dir},
                                                          {"baseline", baseline}, {"prompts", r.files.test}, {"test", test},
                                                          {"tokenizer", r.files.tokenizer}, {"training", train_dir}});
  run_stage(r.dir, "eval_" + name, key, r.logs, [&] {
    m.generate(model_dir, adapter, r.files.test, d + "/generations.jsonl", r.p.eval.n, derive_seed(r.seed, SeedPurpose::eval_generation), prompt_tokens);
    m.score(d + "/generations.jsonl", prompt_tokens);
    eval::EvalJob job;
    job.generations = d + "/generations.jsonl";
    if (!baseline.empty()) job.baseline = baseline, job.baseline_name = "sft";
    job.test = test;
    job.name = name, job.out = d, job.max_prompt_length = prompt_tokens;
    if (name != "sft" || r.p.sft) job.training = training_cost(train_dir);  // a given policy has no training cost here
    job.oracle = r.oracle;
    const EvalModels models{model_dir, adapter, m.sft_model, r.files.tokenizer, text::to_string(m.chat.format), r.p.run.device};
    run_eval(job, models, r.logs.detail);  // every rank scores a share; rank 0 evaluates and writes
  });
  return {name, d};
}

// The reward model: given (scoring with its own tokenizer and chat format: it may be another family), or
// trained on preference pairs with the policy's.
void reward_model(const SeedRun& r, Models& m, const TrainInputs& in) {
  const PipelineConfig& p = r.p;
  if (!p.reward.path.empty()) {
    m.rm_dir = p.reward.path;
    auto rm_text = text::load_text_setup(p.reward.tokenizer.empty() ? m.rm_dir : p.reward.tokenizer, p.reward.chat_format);
    m.rm_tok = std::move(rm_text.tok);
    m.rm_chat = rm_text.chat;
    if (!rm_text.warning.empty()) r.logs.say << rm_text.warning << "\n";
    return;
  }
  TrainInputs s = in;
  s.model = p.reward.init == RewardInit::sft ? m.sft_model : r.files.policy;
  s.data = r.files.reward_data;
  train_stage(r, "reward", "reward", s);
  m.rm_dir = latest(r.dir + "/reward/run") + "/model";
  m.rm_chat = m.chat;
}

// The generated responses, each distinct one once (generate.distinct), scored by the reward model; returns
// the ranked file.
std::string annotate(const SeedRun& r, const Models& m, const std::string& responses, int64_t prompt_tokens) {
  const std::string ranked = r.dir + "/annotate/ranked.jsonl";
  // A given reward model is named in [reward]; the prompts' budget and `distinct` in [generate].
  Settings settings = table_settings(r.p.file, "reward");
  settings.merge(table_settings(r.p.file, "generate"));
  run_stage(r.dir, "annotate", stage_key(r, settings, {{"responses", responses}, {"reward", m.rm_dir}}), r.logs, [&] {
    if (dist::world().is_main()) {
      if (r.p.generate.distinct) distinct_responses(responses, ranked, r.logs.say);
      else io::copy_file(responses, ranked);
    }
    dist::world().barrier();
    m.score(ranked, prompt_tokens);  // sharded under torchrun
  });
  return ranked;
}

// The task stage (with [task]) or the file's paths: where the policy and the data are.
void resolve_inputs(SeedRun& r) {
  const PipelineConfig& p = r.p;
  if (p.task) {
    Settings settings = table_settings(p.file, "task");
    settings["run.seed"] = std::to_string(r.seed);
    run_stage(r.dir, "task", StageKey{settings, {}}, r.logs, [&] {
      if (dist::world().is_main()) p.task->write(r.seed, r.dir + "/task");
    });
    r.files = p.task->files(r.dir + "/task");
    r.oracle = p.task->oracle;
  } else {
    r.files = {p.policy.path, p.policy.tokenizer, p.policy.chat_format, p.sft_data, p.generate.prompts, p.reward.data,
               p.eval.prompts};
  }
  r.prompt_tokens = p.max_prompt_length > 0 ? p.max_prompt_length : default_prompt_budget(r.files.policy);
}

// One seed of the pipeline in r.dir; returns the evaluated runs (name, eval folder) in table order.
std::vector<eval::NamedDir> run_one(SeedRun& r, bool report_to_say) {
  const PipelineConfig& p = r.p;
  io::make_dirs(r.dir);
  resolve_inputs(r);
  Models m{r, text::Tokenizer::from_dir(r.files.tokenizer), {}, {}, {}, std::nullopt, {}};
  m.chat = text::choose_chat_template(m.tok.config(), r.files.chat_format, r.files.tokenizer);
  const std::string chat = text::to_string(m.chat.format);
  r.derived = {{"run.seed", std::to_string(r.seed)}, {"run.device", p.run.device}, {"chat_format", chat},
               {"prompt_budget", std::to_string(r.prompt_tokens)}};
  const TrainInputs in{r.files.policy, r.files.tokenizer, "", "", chat, p.run.device, r.seed, r.prompt_tokens};

  // 1. SFT on the best responses of the SFT data (a given policy as is when sft.enabled = false).
  if (p.sft) {
    TrainInputs s = in;
    s.data = r.files.sft_data;
    train_stage(r, "sft", "sft", s);
  }
  m.sft_model = p.sft ? latest(r.dir + "/sft/run") + "/model" : r.files.policy;

  // 2. K responses per training prompt from the SFT model.
  const int64_t gen_tokens = p.generate.max_prompt_length > 0 ? p.generate.max_prompt_length : r.prompt_tokens;
  const std::string responses = r.dir + "/generate/responses.jsonl";
  const StageKey gen_key = stage_key(r, table_settings(p.file, "generate"),
                                     {{"model", m.sft_model}, {"prompts", r.files.prompts}, {"tokenizer", r.files.tokenizer}});
  run_stage(r.dir, "generate", gen_key, r.logs, [&] { m.generate(m.sft_model, "", r.files.prompts, responses, p.generate.n, r.seed, gen_tokens); });

  // 3. The reward model; 4. the generated responses annotated with it.
  reward_model(r, m, in);
  const std::string ranked = annotate(r, m, responses, gen_tokens);

  // 5. Each preference method from the same SFT model with the same budget.
  for (const auto& method : p.methods) {
    TrainInputs s = in;
    s.model = m.sft_model, s.data = ranked;
    train_stage(r, "train_" + method, method, s);
  }

  // 6. Generate on the test prompts with every model, score, evaluate against the SFT model.
  std::vector<eval::NamedDir> runs{evaluate(r, m, "sft", m.sft_model, "")};
  for (const auto& method : p.methods) {
    const std::string ck = latest(r.dir + "/train_" + method + "/run");
    const bool lora = io::dir_exists(ck + "/adapter");
    runs.push_back(lora ? evaluate(r, m, method, m.sft_model, ck + "/adapter") : evaluate(r, m, method, ck + "/model", ""));
  }

  // 7. One report.
  r.logs.say << "== report\n";
  if (dist::world().is_main()) eval::combine_reports(runs, r.dir + "/report", report_to_say ? r.logs.say : r.logs.detail);
  r.logs.say << "report: " << r.dir << "/report/report.md\n" << std::flush;
  return runs;
}

}  // namespace

void run_pipeline(const Config& cfg, const TaskKinds& tasks, std::ostream& out, bool verbose) {
  const PipelineConfig p = read_pipeline_config(cfg, tasks);
  const std::string& dir = p.run.dir;
  // Under torchrun every rank runs the pipeline (each stage as a group); rank 0 alone writes the run's
  // config, log and records and prints.
  const dist::World& world = dist::world();
  world.check_same("the pipeline config", cfg.dump());
  std::ofstream file;
  if (world.is_main()) {
    io::make_dirs(dir);
    io::write_file_atomic(dir + "/config.toml", [&](std::ostream& o) { o << cfg.dump() << "\n"; });
    file.open(dir + "/log.txt", std::ios::app);
    if (!file) throw InputError(dir + "/log.txt: cannot open for writing");
  }
  world.barrier();
  TeeBuf say_buf(out, file), detail_buf(out, file);
  std::ostream say(world.is_main() ? &say_buf : nullptr), tee(world.is_main() ? &detail_buf : nullptr);
  const Logs logs{say, world.main_log(verbose ? tee : file)};
  say << "hps pipeline: " << dir << " (progress of every stage: " << dir << "/log.txt)\n";
  if (p.run.seeds == 1) {
    SeedRun r{p, logs, dir, p.run.seed, {}, {}, 1024, {}};
    run_one(r, true);
    return;
  }
  // Several seeds: the whole pipeline (task included) once per seed in RUN/seed-N, then mean ± sd.
  std::vector<std::pair<std::string, std::vector<eval::NamedDir>>> all;
  for (int64_t i = 0; i < p.run.seeds; ++i) {
    const uint64_t seed = p.run.seed + static_cast<uint64_t>(i);
    say << "=== seed " << seed << " (" << i + 1 << " of " << p.run.seeds << ")\n";
    SeedRun r{p, logs, dir + "/seed-" + std::to_string(seed), seed, {}, {}, 1024, {}};
    all.emplace_back("seed " + std::to_string(seed), run_one(r, false));
  }
  say << "=== report over " << p.run.seeds << " seeds\n";
  if (dist::world().is_main()) eval::aggregate_seed_reports(all, dir + "/report", say);
  say << "report: " << dir << "/report/report.md\n" << std::flush;
}

}  // namespace hps::pipeline
