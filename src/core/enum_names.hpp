// One name table per enum: the names an enum has in config files and on the command line, declared once and
// used both ways. parse_enum throws ConfigError naming the field and listing every accepted name:
//   'loss.preference': unknown value 'plackett' (expected one of: bt, pl, hps, hps_full)
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "core/error.hpp"

namespace hps {

template <typename E, std::size_t N>
using EnumNames = std::array<std::pair<std::string_view, E>, N>;

template <typename E, std::size_t N>
E parse_enum(std::string_view s, std::string_view field, const EnumNames<E, N>& names) {
  std::string accepted;
  for (const auto& [name, value] : names) {
    if (s == name) return value;
    accepted += (accepted.empty() ? "" : ", ") + std::string(name);
  }
  throw ConfigError("'" + std::string(field) + "': unknown value '" + std::string(s) + "' (expected one of: " +
                    accepted + ")");
}

// The first name of `v` in the table (a table may list aliases after the canonical name); "?" if absent.
template <typename E, std::size_t N>
constexpr std::string_view enum_name(E v, const EnumNames<E, N>& names) {
  for (const auto& [name, value] : names)
    if (value == v) return name;
  return "?";
}

}  // namespace hps
