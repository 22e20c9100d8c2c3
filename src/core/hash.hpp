// FNV-1a, 64 bits: a digest that is the same on every platform, build and run (not for security) — stage
// records' input digests, the config check across the ranks of a process group.
#pragma once

#include <cstdint>
#include <string_view>

namespace hps {

constexpr uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return h;
}

}  // namespace hps
