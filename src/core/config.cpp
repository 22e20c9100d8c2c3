#include "core/config.hpp"

#include <charconv>
#include <sstream>
#include <toml++/toml.h>

#include "core/config_schema.hpp"
#include "core/error.hpp"

namespace hps {

struct Config::Impl {
  toml::table root;
};

Config::Config() : impl_(std::make_unique<Impl>()) {}
Config::~Config() = default;
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;
Config::Config(const Config& o)
    : impl_(std::make_unique<Impl>(*o.impl_)), source_(o.source_), base_dir_(o.base_dir_), overridden_(o.overridden_) {}
Config& Config::operator=(const Config& o) {
  if (this != &o) *this = Config(o);
  return *this;
}

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

// The table at `dotted` under `root` ("" = root itself), created segment by segment when `create`; nullptr when
// absent (and not created). A segment that is empty or names a value, not a table: UsageError when creating
// (an override's key), ConfigError otherwise (the file's layout).
toml::table* table_at(toml::table& root, std::string_view dotted, bool create) {
  toml::table* t = &root;
  if (dotted.empty()) return t;
  for (std::string_view rest = dotted;;) {
    const auto dot = rest.find('.');
    const std::string seg(rest.substr(0, dot));
    if (seg.empty()) throw UsageError("key '" + std::string(dotted) + "' has an empty segment");
    if (!t->contains(seg)) {
      if (!create) return nullptr;
      t->insert(seg, toml::table{});
    }
    t = t->get(seg)->as_table();
    if (!t && create) throw UsageError("key '" + std::string(dotted) + "': '" + seg + "' is not a table");
    if (!t) throw ConfigError("'" + std::string(dotted.substr(0, dotted.size() - rest.size() + seg.size())) + "' must be a table");
    if (dot == std::string_view::npos) return t;
    rest = rest.substr(dot + 1);
  }
}

void merge_into(toml::table& dst, const toml::table& src) {
  for (const auto& [k, v] : src) {
    toml::table* sub = dst.get_as<toml::table>(k.str());
    if (sub && v.is_table()) merge_into(*sub, *v.as_table());
    else dst.insert_or_assign(k.str(), v);
  }
}

void flatten_into(const toml::table& t, const std::string& prefix, std::map<std::string, std::string>& out) {
  for (const auto& [k, v] : t) {
    const std::string key = prefix + std::string(k.str());
    if (const auto* sub = v.as_table()) {
      flatten_into(*sub, key + ".", out);
      continue;
    }
    if (const auto d = v.value_exact<double>()) {
      // The shortest text that reads back as the same double ("0.1", not toml++'s "0.10000000000000001").
      char buf[64];
      std::string text(buf, std::to_chars(buf, buf + sizeof buf, *d).ptr);
      if (text.find_first_of(".eEn") == std::string::npos) text += ".0";  // still a float: 3.0, not 3
      out[key] = text;
      continue;
    }
    std::ostringstream os;
    v.visit([&](const auto& value) { os << value; });
    out[key] = os.str();
  }
}

std::pair<std::string_view, std::string_view> split_last(std::string_view dotted) {
  const auto dot = dotted.rfind('.');
  if (dot == std::string_view::npos) return {{}, dotted};
  return {dotted.substr(0, dot), dotted.substr(dot + 1)};
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
  const auto slash = path.rfind('/');
  c.base_dir_ = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
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
  const auto [table, leaf] = split_last(key);
  if (leaf.empty()) throw UsageError("override key '" + key + "' has an empty segment");
  toml::table* t = table_at(impl_->root, table, /*create=*/true);
  if (value_node)
    t->insert_or_assign(leaf, *value_node);
  else
    t->insert_or_assign(leaf, text);
  overridden_.insert(key);
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

std::string Config::get_path(std::string_view key, std::string fallback) const {
  if (!has(key)) return fallback;
  const std::string v = get_string(key, "");
  // String operations, not std::filesystem (see io/atomic_file.hpp: LibTorch's copies of its symbols).
  if (base_dir_.empty() || base_dir_ == "." || overridden_.contains(key) || v.empty() || v[0] == '/') return v;
  return (base_dir_ == "/" ? "" : base_dir_) + "/" + (v.rfind("./", 0) == 0 ? v.substr(2) : v);
}

void Config::check_known(std::string_view table, std::initializer_list<std::string_view> known) const {
  check_known(table, std::span<const std::string_view>(known.begin(), known.size()));
}

void Config::check_known(std::string_view table, std::span<const std::string_view> known) const {
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

void Config::merge_table(const Config& src, std::string_view from, std::string_view to) {
  const toml::table* s = &src.impl_->root;
  if (!from.empty()) {
    auto node = src.impl_->root.at_path(from);
    if (!node) return;
    s = node.as_table();
    if (!s) throw ConfigError("'" + std::string(from) + "' in " + src.source_ + " must be a table");
  }
  merge_into(*table_at(impl_->root, to, /*create=*/true), *s);
}

void Config::erase(std::string_view key) {
  const auto [table, leaf] = split_last(key);
  if (toml::table* t = table_at(impl_->root, table, /*create=*/false)) t->erase(leaf);
}

std::vector<std::string> Config::keys(std::string_view table) const {
  std::vector<std::string> out;
  const toml::table* t = table_at(impl_->root, table, /*create=*/false);
  if (t)
    for (const auto& [k, v] : *t) out.emplace_back(k.str());
  return out;
}

std::map<std::string, std::string> Config::flatten(std::string_view table) const {
  std::map<std::string, std::string> out;
  if (const toml::table* t = table_at(impl_->root, table, /*create=*/false)) flatten_into(*t, "", out);
  return out;
}

std::string Config::dump() const {
  std::ostringstream os;
  os << impl_->root;
  return os.str();
}

}  // namespace hps

namespace hps {

// toml++ quotes and escapes strings exactly as its parser reads them back.
std::string toml_string(std::string_view s) {
  std::ostringstream o;
  o << toml::value<std::string>(std::string(s));
  return o.str();
}

// The shortest text that reads back to the same double (0.05, not 0.050000000000000003), kept a TOML float.
std::string toml_double(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";  // 2 → 2.0; 1e-07, inf and nan are floats already
  return s;
}

}  // namespace hps
