// hps — preference alignment with Hard Preference Sampling. The only place that catches exceptions.
#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include <iostream>

#include "cli/commands.hpp"
#include "core/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"hps — align language models with human preferences using Hard Preference Sampling (HPS)"};
  app.set_version_flag("--version", std::string("hps ") + HPS_VERSION);
  app.require_subcommand(1);
  std::vector<hps::cli::Command> commands;
  commands.push_back(hps::cli::add_demo_command(app));
  commands.push_back(hps::cli::add_loss_demo_command(app));
  commands.push_back(hps::cli::add_model_command(app));
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
    return app.exit(e);
  }
  try {
    for (auto& c : commands)
      if (c.app->parsed()) return c.run();
    return 0;
  } catch (const hps::Error& e) {
    std::cerr << "hps: " << hps::to_string(e.kind()) << ": " << e.what() << "\n";
    return e.kind() == hps::ErrorKind::usage ? 2 : 1;
  } catch (const c10::Error& e) {
    std::cerr << "hps: tensor error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "hps: error: " << e.what() << "\n";
    return 1;
  }
}
