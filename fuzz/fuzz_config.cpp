// A TOML configuration plus one `--key=value` override (the input's first line when it holds '='), then the
// typed readers of the [loss] and [gamma] tables (the schema machinery every config table goes through).
#include "core/config.hpp"
#include "fuzz_common.hpp"
#include "prefs/config_io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hps::fuzz::run_input([&] {
    auto [first, rest] = hps::fuzz::split_once(hps::fuzz::as_text(data, size), '\n');
    const bool has_override = first.find('=') != std::string_view::npos;
    hps::Config cfg = hps::Config::from_string(has_override ? rest : hps::fuzz::as_text(data, size), "fuzz.toml");
    if (has_override) cfg.set_override(first);
    (void)cfg.flatten();
    const std::string text = cfg.dump();
    (void)hps::Config::from_string(text, "dumped");  // what dump() writes reads back
    (void)cfg.keys("");
    (void)hps::prefs::read_loss_config(cfg);
    (void)hps::prefs::read_gamma_schedule(cfg);
  });
}
