// A config table's keys, each declared once: its name, where its value goes in a plain settings struct, how it
// is read (a number, a flag, a string, a path, an enum name) and the rule it must meet. check_known, the reader
// and the key list all come from that one declaration, so a key cannot be accepted but not read (or read under
// another spelling than the one checked).
//
//   static const TableSchema<LoopSettings> loop = TableSchema<LoopSettings>("train")
//       .add("lr", &LoopSettings::lr, positive<double>())
//       .add("beta1", [](LoopSettings& l) -> double& { return l.adamw.beta1; });
//   LoopSettings l = base;  // the defaults: a key the config does not give keeps base's value
//   loop.read(cfg, l);      // ConfigError for an unknown key in [train], a wrong type or a broken rule
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/config.hpp"
#include "core/error.hpp"

namespace hps {

// A value as an error message shows it: 0.5, 1e-07, 12.
template <typename T>
std::string shown(const T& v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

// A rule on one value: called with the value's full key ("train.lr"); throws ConfigError when broken.
template <typename T>
using Rule = std::function<void(const std::string& key, const T& value)>;

// Numbers from settings are finite: NaN fails every comparison below, ±inf is refused here.
template <typename T>
bool finite_value(const T& v) {
  if constexpr (std::is_floating_point_v<T>) return std::isfinite(v);
  return true;
}
template <typename T>
constexpr const char* and_finite() {
  return std::is_floating_point_v<T> ? " and finite" : "";
}

template <typename T>
Rule<T> positive() {
  return [](const std::string& key, const T& v) {
    if (!(v > T(0)) || !finite_value(v)) throw ConfigError(key + " must be > 0" + and_finite<T>() + ", found " + shown(v));
  };
}

template <typename T>
Rule<T> at_least(T lo) {
  return [lo](const std::string& key, const T& v) {
    if (!(v >= lo) || !finite_value(v)) throw ConfigError(key + " must be ≥ " + shown(lo) + and_finite<T>() + ", found " + shown(v));
  };
}

// lo ≤ v < hi (AdamW's betas: [0, 1)).
template <typename T>
Rule<T> in_half_open(T lo, T hi) {
  return [lo, hi](const std::string& key, const T& v) {
    if (!(v >= lo && v < hi)) throw ConfigError(key + " must be in [" + shown(lo) + ", " + shown(hi) + "), found " + shown(v));
  };
}

inline Rule<double> probability() {
  return [](const std::string& key, double v) {
    if (!(v >= 0 && v <= 1)) throw ConfigError(key + " must be a probability in [0, 1], found " + shown(v));
  };
}

inline Rule<std::string> required(std::string what) {
  return [what = std::move(what)](const std::string& key, const std::string& v) {
    if (v.empty()) throw ConfigError(key + " is required (" + what + ")");
  };
}

// A value as TOML text (what --print-config writes): true, 42, 0.5, 1e-07, "text".
std::string toml_string(std::string_view s);
std::string toml_double(double v);
template <typename T>
std::string toml_text(const T& v) {
  if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
  else if constexpr (std::is_integral_v<T>) return std::to_string(v);
  else if constexpr (std::is_floating_point_v<T>) return toml_double(static_cast<double>(v));
  else if constexpr (std::is_convertible_v<T, std::string_view>) return toml_string(v);
  else return toml_string(to_string(v));  // an enum: its namespace's to_string (found by ADL)
}

template <typename S>
class TableSchema {
 public:
  explicit TableSchema(std::string table) : table_(std::move(table)) {}

  // A number, flag or string: `get` is a data member pointer or a callable S& → T&.
  template <typename Get, typename T = std::remove_cvref_t<std::invoke_result_t<Get, S&>>>
  TableSchema&& add(std::string_view name, Get get, Rule<T> rule = {}) && {
    fields_.push_back({std::string(name), [get, rule](const Config& c, const std::string& key, S& s) {
                         T& v = std::invoke(get, s);
                         if (c.has(key)) v = read_value<T>(c, key, v);
                         if (rule) rule(key, v);
                       }, shower(get)});
    return std::move(*this);
  }

  // A file or folder name: relative values in a file resolve against the file's folder (Config::get_path).
  template <typename Get>
  TableSchema&& path(std::string_view name, Get get, Rule<std::string> rule = {}) && {
    fields_.push_back({std::string(name), [get, rule](const Config& c, const std::string& key, S& s) {
                         std::string& v = std::invoke(get, s);
                         v = c.get_path(key, v);
                         if (rule) rule(key, v);
                       }, shower(get)});
    return std::move(*this);
  }

  // An enum by name: `parse(text, key)` gives the value (and names the accepted ones when it throws).
  template <typename Get, typename Parse>
  TableSchema&& name(std::string_view name, Get get, Parse parse) && {
    fields_.push_back({std::string(name), [get, parse](const Config& c, const std::string& key, S& s) {
                         if (c.has(key)) std::invoke(get, s) = parse(c.get_string(key, ""), key);
                       }, shower(get)});
    return std::move(*this);
  }

  // Anything else: `read(config, full key, settings)` is called whether or not the key is given; `show` gives
  // the value as TOML text for write().
  TableSchema&& custom(std::string_view name, std::function<void(const Config&, const std::string&, S&)> read,
                       std::function<std::string(const S&)> show) && {
    fields_.push_back({std::string(name), std::move(read), std::move(show)});
    return std::move(*this);
  }

  // Subtables (or keys) the table may also hold, read by someone else (a stage's [sft.train] …).
  TableSchema&& also_allows(std::span<const std::string_view> names) && {
    for (auto n : names) others_.emplace_back(n);
    return std::move(*this);
  }

  // Checks [table] for unknown keys, then reads every declared key into `s` in declaration order.
  void read(const Config& c, S& s) const { read(c, table_, s); }
  // The same under another table name (a pipeline's [methods.hps.loss] reads as [loss]).
  void read(const Config& c, const std::string& table, S& s) const {
    c.check_known(table, known());
    for (const auto& f : fields_) f.read(c, table.empty() ? f.name : table + "." + f.name, s);
  }

  // "[table]" and every key = value of `s`: a configuration that reads back to `s` (--print-config).
  void write(const S& s, std::ostream& out) const {
    if (!table_.empty()) out << "[" << table_ << "]\n";
    for (const auto& f : fields_) out << f.name << " = " << f.show(s) << "\n";
  }

  const std::string& table() const { return table_; }
  std::vector<std::string_view> keys() const {
    std::vector<std::string_view> out;
    for (const auto& f : fields_) out.emplace_back(f.name);
    return out;
  }
  std::vector<std::string_view> known() const {
    std::vector<std::string_view> out = keys();
    out.insert(out.end(), others_.begin(), others_.end());
    return out;
  }

 private:
  struct Field {
    std::string name;
    std::function<void(const Config&, const std::string&, S&)> read;
    std::function<std::string(const S&)> show;
  };

  // The field's current value as TOML text (`get` takes S&: reading through it changes nothing).
  template <typename Get>
  static std::function<std::string(const S&)> shower(Get get) {
    return [get](const S& s) { return toml_text(std::invoke(get, const_cast<S&>(s))); };
  }

  template <typename T>
  static T read_value(const Config& c, const std::string& key, const T& fallback) {
    if constexpr (std::is_same_v<T, bool>) return c.get_bool(key, fallback);
    else if constexpr (std::is_integral_v<T>) return static_cast<T>(c.get_int(key, static_cast<int64_t>(fallback)));
    else if constexpr (std::is_floating_point_v<T>) return static_cast<T>(c.get_double(key, fallback));
    else if constexpr (std::is_same_v<T, std::string>) return c.get_string(key, fallback);
    else static_assert(sizeof(T) == 0, "TableSchema::add: a number, bool or string (use name() for an enum)");
  }

  std::string table_;
  std::vector<Field> fields_;
  std::vector<std::string> others_;
};

}  // namespace hps
