// Configuration: a TOML document (file or string) plus `--key=value` overrides on top.
// Typed getters name the source and the key on a type mismatch; check_known() rejects typos.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

namespace hps {

class Config {
 public:
  Config();
  ~Config();
  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;

  // Parse errors: ConfigError "<source>:<line>:<column>: <reason>".
  static Config from_file(const std::string& path);
  static Config from_string(std::string_view toml, std::string source);

  // "a.b.c=value": value parsed as a TOML value (42, 0.5, true, "s", [1, 2]); anything that is not
  // valid TOML is taken as a plain string. Creates intermediate tables.
  void set_override(std::string_view assignment);

  bool has(std::string_view dotted_key) const;
  int64_t get_int(std::string_view dotted_key, int64_t fallback) const;
  double get_double(std::string_view dotted_key, double fallback) const;
  bool get_bool(std::string_view dotted_key, bool fallback) const;
  std::string get_string(std::string_view dotted_key, std::string fallback) const;

  // ConfigError for any key of table `table` ("" = the top level) not listed in `known`.
  void check_known(std::string_view table, std::initializer_list<std::string_view> known) const;

  // The effective configuration as TOML text.
  std::string dump() const;
  const std::string& source() const { return source_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string source_ = "<defaults>";
};

}  // namespace hps
