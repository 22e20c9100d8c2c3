// hps — preference alignment with Hard Preference Sampling. The only place that catches exceptions.
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include <iostream>
#include <optional>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/threads.hpp"
#include "dist/world.hpp"

namespace {

// The message of a CLI11 parse error, with the command to ask for help. CLI11 checks required options and
// subcommands before it reports arguments it did not expect, but a mistyped option or command is the likelier
// cause of both, so arguments left over by a command that takes no extras are named first.
std::string usage_message(const CLI::App& app, const CLI::ParseError& e) {
  const CLI::App* cmd = &app;
  std::string where = "hps";
  while (!cmd->get_subcommands().empty()) {
    cmd = cmd->get_subcommands().front();
    where += " " + cmd->get_name();
  }
  std::string msg = e.what();
  const std::vector<std::string> extra = cmd->remaining();
  if (!extra.empty() && !cmd->get_allow_extras()) {
    if (extra[0][0] != '-' && cmd->get_require_subcommand_min() > 0) {
      msg = "unknown command '" + where + " " + extra[0] + "'";
    } else {
      msg = "unexpected argument" + std::string(extra.size() > 1 ? "s" : "");
      for (size_t i = 0; i < extra.size(); ++i) msg += (i ? ", '" : " '") + extra[i] + "'";
    }
  }
  return msg + "\n  (see " + where + " --help)";
}

// "[rank 1 of 2] " in a process group: every rank reports its own errors.
std::string rank_tag() {
  const auto& w = hps::dist::world();
  return w.distributed() ? "[rank " + std::to_string(w.rank()) + " of " + std::to_string(w.size()) + "] " : "";
}

}  // namespace

int main(int argc, char** argv) {
  hps::ensure_passive_openmp(argv);
  CLI::App app{"hps — align language models with human preferences using Hard Preference Sampling (HPS)"};
  app.set_version_flag("--version", std::string("hps ") + HPS_VERSION);
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();  // every option's --help shows its default (subcommands inherit)
  std::optional<int> threads;
  app.add_option("--threads", threads,
                 "CPU threads per process (default: HPS_THREADS, OMP_NUM_THREADS, else the CPUs this process may use)");
  std::vector<hps::cli::Command> commands;
  commands.push_back(hps::cli::add_demo_command(app));
  commands.push_back(hps::cli::add_loss_demo_command(app));
  commands.push_back(hps::cli::add_model_command(app));
  commands.push_back(hps::cli::add_download_command(app));
  commands.push_back(hps::cli::add_logprobs_command(app));
  commands.push_back(hps::cli::add_tokenize_command(app));
  commands.push_back(hps::cli::add_data_command(app));
  commands.push_back(hps::cli::add_generate_command(app));
  commands.push_back(hps::cli::add_score_command(app));
  commands.push_back(hps::cli::add_eval_command(app));
  commands.push_back(hps::cli::add_report_command(app));
  commands.push_back(hps::cli::add_pipeline_command(app));
  commands.push_back(hps::cli::add_train_command(app, hps::train::Task::preference));
  commands.push_back(hps::cli::add_train_command(app, hps::train::Task::sft));
  commands.push_back(hps::cli::add_train_command(app, hps::train::Task::reward));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive as parse "errors" with exit code 0: CLI11 prints them. Every other parse
    // error (unknown option or subcommand, missing value or required option, bad value) is a usage error,
    // printed and coded like the UsageErrors thrown below: `hps: usage: <message>`, exit 2.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::cerr << "hps: " << hps::to_string(hps::ErrorKind::usage) << ": " << usage_message(app, e) << "\n";
    return 2;
  } catch (const hps::Error& e) {  // an option's value resolved while parsing (a hub id the cache lacks)
    std::cerr << "hps: " << hps::to_string(e.kind()) << ": " << e.what() << "\n";
    return e.kind() == hps::ErrorKind::usage ? 2 : 1;
  }
  try {
    at::set_num_threads(hps::thread_count(threads));
    for (auto& c : commands)
      if (c.app->parsed()) {
        // Under torchrun (WORLD_SIZE set): join the group for the commands that run data-parallel.
        const auto launch = hps::dist::launch_from_env();
        if (launch && launch->world_size > 1 && !c.data_parallel)
          throw hps::UsageError("hps " + c.app->get_name() + " runs as one process; launched with WORLD_SIZE=" +
                                std::to_string(launch->world_size) + " (only hps train, sft, train-rm, generate, score, "
                                "eval and pipeline run data-parallel so far: launch it without torchrun)");
        if (c.data_parallel) hps::dist::init_from_env();
        return c.run();
      }
    return 0;
  } catch (const hps::Error& e) {
    std::cerr << "hps: " << rank_tag() << hps::to_string(e.kind()) << ": " << e.what() << "\n";
    return e.kind() == hps::ErrorKind::usage ? 2 : 1;
  } catch (const c10::Error& e) {
    std::cerr << "hps: " << rank_tag() << "tensor error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "hps: " << rank_tag() << "error: " << e.what() << "\n";
    return 1;
  }
}
