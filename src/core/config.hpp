// Configuration: a TOML document (file or string) plus `--key=value` overrides on top.
// Typed getters name the source and the key on a type mismatch; check_known() rejects typos.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hps {

class Config {
 public:
  Config();
  ~Config();
  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;
  Config(const Config&);  // a deep copy
  Config& operator=(const Config&);

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
  // A string naming a file or folder. A relative value written in the file resolves against the file's
  // folder (so a config means the same from any current directory); one given by an override
  // (--key=value, typed in a shell) or in a config not read from a file is left as is: relative to the
  // current directory. `fallback` is returned as is.
  std::string get_path(std::string_view dotted_key, std::string fallback) const;

  // ConfigError for any key of table `table` ("" = the top level) not listed in `known`.
  void check_known(std::string_view table, std::initializer_list<std::string_view> known) const;
  void check_known(std::string_view table, std::span<const std::string_view> known) const;

  // Composing configurations (the pipeline's per-stage view of its file):
  // Copies table `from` of `src` ("" = its top level) into this configuration's table `to` (created as needed):
  // subtables merge key by key, other values replace. Nothing happens when `src` has no table `from`;
  // ConfigError when `from` is not a table.
  void merge_table(const Config& src, std::string_view from, std::string_view to);
  // Removes a key (or a table), if present.
  void erase(std::string_view dotted_key);
  // The names in table `table` ("" = the top level), in order; empty when there is no such table.
  std::vector<std::string> keys(std::string_view table) const;
  // Every value under `table` ("" = all) as "dotted.key" (relative to `table`) → its TOML text, sorted by key:
  // what two runs' settings are compared by.
  std::map<std::string, std::string> flatten(std::string_view table = "") const;

  // The effective configuration as TOML text.
  std::string dump() const;
  const std::string& source() const { return source_; }
  // The folder of the file this configuration was read from ("" when not read from a file).
  const std::string& base_dir() const { return base_dir_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string source_ = "<defaults>";
  std::string base_dir_;
  std::set<std::string, std::less<>> overridden_;  // keys set by set_override: paths relative to the current directory
};

}  // namespace hps
