// config.json of a model (and adapter_config.json of a LoRA adapter, which shares the JSON reader).
#include "fuzz_common.hpp"
#include "io/json_text.hpp"
#include "model/model_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hps::fuzz::run_input([&] {
    const auto j = hps::io::parse_json(hps::fuzz::as_text(data, size), "config.json");
    (void)hps::model::parse_model_config(j, "config.json");
  });
}
