#include "cli/commands.hpp"

#include <iostream>
#include <memory>

#include "core/config.hpp"
#include "core/error.hpp"
#include "demo/loss_demo.hpp"

namespace hps::cli {

std::vector<std::string> collect_overrides(const std::vector<std::string>& extras) {
  std::vector<std::string> out;
  for (size_t i = 0; i < extras.size(); ++i) {
    const std::string& a = extras[i];
    if (a.rfind("--", 0) != 0 || a.size() < 3)
      throw UsageError("unexpected argument '" + a + "' (overrides look like --section.key=value)");
    std::string kv = a.substr(2);
    if (kv.find('=') == std::string::npos) {
      if (i + 1 >= extras.size()) throw UsageError("override '" + a + "' has no value");
      kv += "=" + extras[++i];
    }
    out.push_back(kv);
  }
  return out;
}

Config load_config(const std::string& path, const std::vector<std::string>& extras) {
  Config cfg = path.empty() ? Config{} : Config::from_file(path);
  for (const auto& kv : collect_overrides(extras)) cfg.set_override(kv);
  return cfg;
}

Command add_loss_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "loss-demo", "Fit every preference model on free per-response parameters (Theorem 3's margin, no model)");
  auto config_path = std::make_shared<std::string>();
  auto all = std::make_shared<bool>(false);
  cmd->add_option("--config", *config_path, "TOML config ([demo], [loss], [gamma] tables)");
  cmd->add_flag("--all-objectives", *all, "Run every parameterization, not only DPO");
  cmd->allow_extras();
  cmd->footer("Any --section.key=value overrides the config, e.g. --demo.steps=100 --loss.beta=0.2");
  return {cmd, [cmd, config_path, all]() {
    Config cfg = load_config(*config_path, cmd->remaining());
    demo::DemoConfig dc = demo::read_demo_config(cfg);
    std::cout << "# hps loss-demo — effective config (" << cfg.source() << ")\n" << cfg.dump() << "\n\n";
    std::vector<prefs::Objective> objectives{prefs::Objective::dpo};
    if (*all)
      objectives = {prefs::Objective::dpo, prefs::Objective::ipo,   prefs::Objective::exo, prefs::Objective::sppo,
                    prefs::Objective::nca, prefs::Objective::simpo, prefs::Objective::rdpo};
    std::vector<prefs::Preference> prefs_list{prefs::Preference::bt, prefs::Preference::pl, prefs::Preference::hps,
                                              prefs::Preference::hps_full};
    std::cout << "P=" << dc.prompts << " prompts, K=" << dc.responses << " responses (" << dc.hard
              << " hard negatives), " << dc.steps << " Adam steps, lr " << dc.lr << ", beta " << dc.loss.beta
              << ", gamma " << prefs::to_string(dc.gamma.kind) << " " << dc.gamma.start << " -> " << dc.gamma.end
              << "\nmargin_hardest = mean over prompts of r(best) - max r(dispreferred), r = beta*log(pi/pi_ref)"
                 " (Theorem 3's quantity)\n\n";
    auto rows = demo::run_loss_demo(dc, objectives, prefs_list);
    demo::print_demo_table(rows, std::cout);
    return 0;
  }};
}

}  // namespace hps::cli
