// `hps train`, `hps sft`, `hps train-rm`: one recipe, three tasks.
#include <csignal>
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "dist/world.hpp"
#include "demo/task_kinds.hpp"
#include "demo_toml.hpp"
#include "pipeline/pipeline.hpp"
#include "pipeline/pipeline_config.hpp"
#include "train/preference_trainer.hpp"
#include "train/train_config.hpp"

namespace hps::cli {

namespace {
extern "C" void on_sigint(int) { train::PreferenceTrainer::stop_requested().store(true); }
// --print-config of hps pipeline and hps demo.
int print_pipeline_config(const Config& cfg, const char* command) {
  const pipeline::PipelineConfig p = pipeline::read_pipeline_config(cfg, demo::task_kinds());
  std::cout << "# hps " << command << " — every setting, effective (" << cfg.source() << ")\n";
  pipeline::write_pipeline_config(p, std::cout);
  return 0;
}

}  // namespace

Command add_train_command(CLI::App& app, train::Task task) {
  const char* name = task == train::Task::preference ? "train" : task == train::Task::sft ? "sft" : "train-rm";
  const char* what = task == train::Task::preference
                         ? "Preference fine-tuning (BT / PL / HPS × DPO, IPO, EXO, SPPO, NCA, SimPO, R-DPO)"
                         : task == train::Task::sft ? "Supervised fine-tuning on the best response of each prompt"
                                                    : "Reward-model training (score head; BT on pairs or PL on rankings)";
  auto* cmd = app.add_subcommand(name, what);
  auto path = std::make_shared<std::string>();
  auto resume = std::make_shared<bool>(false), print = std::make_shared<bool>(false);
  cmd->add_option("--config", *path, "TOML: [model] [lora] [data] [train] [loss] [gamma] (see examples/train.toml)");
  cmd->add_flag("--resume", *resume, "continue from the newest complete checkpoint in train.out_dir");
  cmd->add_flag("--print-config", *print, "print every key with its effective value (defaults included) and exit");
  cmd->allow_extras();
  cmd->footer("Any --section.key=value overrides the config, e.g. --loss.preference=bt --train.lr=1e-6");
  return {cmd, [cmd, path, resume, print, task]() -> int {
    Config cfg = load_config(*path, cmd->remaining());
    const train::TrainConfig tc = train::read_train_config(cfg, task);
    if (*print) {
      std::cout << "# hps " << cmd->get_name() << " — every setting, effective (" << cfg.source() << ")\n";
      train::write_train_config(tc, std::cout);
      return 0;
    }
    if (const auto unused = train::ineffective_settings(cfg, tc); !unused.empty()) {
      std::string msg = "settings that would have no effect (remove them or change the method):";
      for (const auto& u : unused) msg += "\n  " + u;
      throw ConfigError(msg);
    }
    const dist::World& world = dist::world();
    world.check_same("the effective config", cfg.dump());
    if (world.is_main())
      std::cout << "# hps " << cmd->get_name() << " — effective config (" << cfg.source() << ")\n" << cfg.dump() << "\n\n";
    train::PreferenceTrainer trainer(tc, cfg.dump());
    std::signal(SIGINT, on_sigint);  // Ctrl-C: save a checkpoint after this step, then exit
    trainer.run(*resume, std::cout);
    return 0;
  }, /*data_parallel=*/true};
}

Command add_pipeline_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("pipeline", "SFT → generate → reward model → annotate → train methods → evaluate → report");
  auto file = std::make_shared<std::string>(), path = std::make_shared<std::string>();
  auto verbose = std::make_shared<bool>(false);
  cmd->add_option("file", *file, "the pipeline TOML (or --config FILE)");
  cmd->add_option("--config", *path, "TOML: [run] [task] [policy] [data] [model] [sft] [generate] [reward] [train] [loss] "
                                     "[gamma] [lora] [methods] [eval] (see docs/pipeline.md)");
  cmd->add_flag("--verbose", *verbose, "also print every stage's progress (always in RUN/log.txt)");
  auto print = std::make_shared<bool>(false);
  cmd->add_flag("--print-config", *print, "print every key with its effective value (each stage's too) and exit");
  cmd->allow_extras();
  cmd->footer("Any --section.key=value overrides the config, e.g. --loss.beta=0.2 --methods.hps.gamma.end=3");
  return {cmd, [cmd, file, path, verbose, print]() -> int {
    if (file->empty() == path->empty())
      throw UsageError("pipeline: give the config once, as --config FILE (or as FILE)");
    Config cfg = load_config(path->empty() ? *file : *path, cmd->remaining());
    if (*print) return print_pipeline_config(cfg, "pipeline");
    pipeline::run_pipeline(cfg, demo::task_kinds(), std::cout, *verbose);
    return 0;
  }, /*data_parallel=*/true};
}

Command add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "The embedded default job: the whole pipeline on a synthetic task hps writes "
                                         "itself (examples/demo.toml, no downloads)");
  auto path = std::make_shared<std::string>();
  auto quick = std::make_shared<bool>(false), verbose = std::make_shared<bool>(false);
  cmd->add_option("--config", *path, "a pipeline TOML instead of the embedded examples/demo.toml");
  cmd->add_flag("--quick", *quick, "the ~1 minute profile: one seed, smaller task, fewer steps (runs/demo-quick)");
  cmd->add_flag("--verbose", *verbose, "also print every stage's progress (always in RUN/log.txt)");
  auto print = std::make_shared<bool>(false);
  cmd->add_flag("--print-config", *print, "print every key with its effective value (each stage's too) and exit");
  cmd->allow_extras();
  cmd->footer("Any --section.key=value overrides the config, e.g. --run.seeds=5 --train.max_steps=400 --gamma.end=3");
  return {cmd, [cmd, path, quick, verbose, print]() -> int {
    Config cfg = path->empty() ? Config::from_string(demo::kDemoToml, "examples/demo.toml (embedded)")
                               : Config::from_file(*path);
    if (*quick)
      for (const char* kv : {"run.dir=runs/demo-quick", "run.seeds=1", "task.sft_records=8000", "task.rm_records=1000",
                             "task.train_prompts=256", "task.test_prompts=100", "sft.train.max_steps=800",
                             "reward.train.max_steps=100", "train.max_steps=40", "generate.n=4", "eval.n=4"})
        cfg.set_override(kv);
    for (const auto& kv : collect_overrides(cmd->remaining())) cfg.set_override(kv);
    if (*print) return print_pipeline_config(cfg, "demo");
    pipeline::run_pipeline(cfg, demo::task_kinds(), std::cout, *verbose);
    return 0;
  }};
}

}  // namespace hps::cli
