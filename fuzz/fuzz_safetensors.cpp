// A whole safetensors file: the 8-byte length, the JSON header, the data section's size.
#include "fuzz_common.hpp"
#include "io/safetensors_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hps::fuzz::run_input([&] {
    uint64_t data_offset = 0;
    const auto parsed = hps::io::parse_layout(data, size, "fuzz.safetensors", data_offset);
    // What the reader promises of an accepted file: tensors tile [0, data bytes) in order.
    uint64_t cursor = 0;
    for (const auto& t : parsed.tensors) {
      if (t.begin != cursor || t.end < t.begin) std::abort();
      cursor = t.end;
    }
    if (data_offset + cursor != size) std::abort();
  });
}
