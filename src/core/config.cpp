#include "core/config.hpp"

#include <sstream>
#include <toml++/toml.h>

#include "core/error.hpp"

namespace hps {

struct Config::Impl {
  toml::table root;
};

Config::Config() : impl_(std::make_unique<Impl>()) {}
Config::~Config() = default;
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;

namespace {

std::string where(const toml::parse_error& e, const std::string& source) {
  std::ostringstream os;
  os << source << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
  return os.str();
}

const char* type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    default: return "date/time";
  }
}

template <typename T>
T get_as(const toml::table& root, const std::string& source, std::string_view key, T fallback, const char* expected) {
  auto node = root.at_path(key);
  if (!node) return fallback;
  if constexpr (std::is_same_v<T, double>) {
    if (node.is_integer()) return static_cast<double>(*node.value<int64_t>());
  }
  if (auto v = node.value_exact<T>()) return *v;
  throw ConfigError("'" + std::string(key) + "' in " + source + " must be " + expected + ", got " +
                    type_name(node.type()));
}

}  // namespace

Config Config::from_string(std::string_view text, std::string source) {
  Config c;
  c.source_ = std::move(source);
  try {
    c.impl_->root = toml::parse(text, c.source_);
  } catch (const toml::parse_error& e) {
    throw ConfigError(where(e, c.source_));
  }
  return c;
}

Config Config::from_file(const std::string& path) {
  Config c;
  c.source_ = path;
  try {
    c.impl_->root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw ConfigError(where(e, path));
  }
  return c;
}

void Config::set_override(std::string_view assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw UsageError("override '" + std::string(assignment) + "' must look like --key=value");
  std::string key(assignment.substr(0, eq));
  std::string text(assignment.substr(eq + 1));

  toml::node* value_node = nullptr;
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + text);
    value_node = parsed.get("v");
  } catch (const toml::parse_error&) {
  }
  toml::table* t = &impl_->root;
  std::string_view rest = key;
  while (true) {
    const auto dot = rest.find('.');
    std::string seg(rest.substr(0, dot));
    if (seg.empty()) throw UsageError("override key '" + key + "' has an empty segment");
    if (dot == std::string_view::npos) {
      if (value_node)
        t->insert_or_assign(seg, *value_node);
      else
        t->insert_or_assign(seg, text);
      break;
    }
    if (!t->contains(seg)) t->insert(seg, toml::table{});
    t = t->get(seg)->as_table();
    if (!t) throw UsageError("override key '" + key + "': '" + seg + "' is not a table");
    rest = rest.substr(dot + 1);
  }
  source_ += " + --" + std::string(assignment);
}

bool Config::has(std::string_view key) const { return static_cast<bool>(impl_->root.at_path(key)); }

int64_t Config::get_int(std::string_view key, int64_t fallback) const {
  return get_as<int64_t>(impl_->root, source_, key, fallback, "an integer");
}
double Config::get_double(std::string_view key, double fallback) const {
  return get_as<double>(impl_->root, source_, key, fallback, "a number");
}
bool Config::get_bool(std::string_view key, bool fallback) const {
  return get_as<bool>(impl_->root, source_, key, fallback, "a boolean");
}
std::string Config::get_string(std::string_view key, std::string fallback) const {
  return get_as<std::string>(impl_->root, source_, key, std::move(fallback), "a string");
}

void Config::check_known(std::string_view table, std::initializer_list<std::string_view> known) const {
  const toml::table* t = &impl_->root;
  if (!table.empty()) {
    auto node = impl_->root.at_path(table);
    if (!node) return;
    t = node.as_table();
    if (!t) throw ConfigError("'" + std::string(table) + "' in " + source_ + " must be a table");
  }
  for (const auto& [k, v] : *t) {
    bool ok = false;
    for (auto name : known) ok = ok || k.str() == name;
    if (!ok) {
      std::string list;
      for (auto name : known) list += (list.empty() ? "" : ", ") + std::string(name);
      std::string full = table.empty() ? std::string(k.str()) : std::string(table) + "." + std::string(k.str());
      throw ConfigError("unknown key '" + full + "' in " + source_ + " (known: " + list + ")");
    }
  }
}

std::string Config::dump() const {
  std::ostringstream os;
  os << impl_->root;
  return os.str();
}

}  // namespace hps
