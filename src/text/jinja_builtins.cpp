#include "text/jinja_builtins.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <unordered_map>

#include "core/error.hpp"
#include "text/jinja_pystr.hpp"
#include "text/utf8.hpp"

namespace hps::text::jinja {

int64_t length(const Value& v) {
  switch (v.kind) {
    case Value::Kind::string: return cp_count(v.s);
    case Value::Kind::list: return static_cast<int64_t>(v.list->size());
    case Value::Kind::dict: return static_cast<int64_t>(v.dict->items.size());
    case Value::Kind::undefined: return 0;
    default: fail(std::string("object of type '") + type_name(v) + "' has no len()");
  }
}

List iterate(const Value& v) {
  switch (v.kind) {
    case Value::Kind::undefined: return {};
    case Value::Kind::list: return *v.list;
    case Value::Kind::dict: {
      List keys;
      for (const auto& [k, x] : v.dict->items) keys.push_back(Value::string(k));
      return keys;
    }
    case Value::Kind::string: {
      List out;
      for (auto cp : code_points(v.s)) out.push_back(Value::string(std::string(cp)));
      return out;
    }
    default: fail(std::string("'") + type_name(v) + "' object is not iterable");
  }
}


namespace {

Value method(const Value& obj, const std::string& name, Args& a) {
  const std::string what = std::string(type_name(obj)) + "." + name + "()";
  if (obj.is_string()) {
    const std::string& s = obj.s;
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      check_args(a, {"chars"}, what);
      return Value::string(py_strip(s, arg(a, 0, "chars"), name != "rstrip", name != "lstrip"));
    }
    if (name == "split") {
      check_args(a, {"sep", "maxsplit"}, what);
      return py_split(s, arg(a, 0, "sep"), arg(a, 1, "maxsplit"));
    }
    if (name == "startswith" || name == "endswith") {
      check_args(a, {"prefix"}, what);
      if (a.pos.size() != 1) fail(what + " takes exactly one argument");
      return Value::boolean(affix(s, a.pos[0], name == "startswith"));
    }
    if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
      check_args(a, {}, what);
      return Value::string(name == "upper" ? py_upper(s) : name == "lower" ? py_lower(s) : name == "title" ? py_title(s) : py_capitalize(s));
    }
    if (name == "replace") {
      check_args(a, {"old", "new", "count"}, what);
      if (a.pos.size() < 2) fail(what + " takes the old and new strings");
      const Value* n = arg(a, 2, "count");
      return Value::string(py_replace(s, need_string(a.pos[0], what), need_string(a.pos[1], what), n ? need_int(*n, what) : -1));
    }
    if (name == "find" || name == "count") {
      check_args(a, {"sub", "start"}, what);
      if (a.pos.empty()) fail(what + " takes a substring");
      const std::string& sub = need_string(a.pos[0], what);
      if (name == "find") {  // code-point offsets, as Python's
        const auto cps = code_points(s);
        int64_t start = a.pos.size() > 1 ? need_int(a.pos[1], what) : 0;
        const auto n = static_cast<int64_t>(cps.size());
        start = std::clamp<int64_t>(start < 0 ? start + n : start, 0, n);
        const size_t from = start == n ? s.size() : static_cast<size_t>(cps[static_cast<size_t>(start)].data() - s.data());
        const size_t f = s.find(sub, from);
        return Value::integer(f == std::string::npos ? -1 : cp_count(std::string_view(s).substr(0, f)));
      }
      if (a.pos.size() > 1) fail(what + ": a start offset is not supported here");
      if (sub.empty()) return Value::integer(cp_count(s) + 1);
      int64_t n = 0;
      for (size_t f = s.find(sub); f != std::string::npos; f = s.find(sub, f + sub.size())) ++n;
      return Value::integer(n);
    }
    if (name == "join") {
      check_args(a, {"iterable"}, what);
      if (a.pos.size() != 1) fail(what + " takes exactly one argument");
      std::string out;
      bool first = true;
      for (const Value& v : iterate(a.pos[0])) out += (first ? "" : s) + need_string(v, what), first = false;
      return Value::string(out);
    }
  }
  if (obj.is_dict()) {
    if (name == "items" || name == "keys" || name == "values") {
      check_args(a, {}, what);
      List out;
      for (const auto& [k, v] : obj.dict->items)
        out.push_back(name == "keys" ? Value::string(k) : name == "values" ? v : Value::make_list({Value::string(k), v}, true));
      return Value::make_list(std::move(out));
    }
    if (name == "get") {
      check_args(a, {"key", "default"}, what);
      if (a.pos.empty()) fail(what + " takes a key");
      const Value* v = a.pos[0].is_string() ? obj.dict->find(a.pos[0].s) : nullptr;
      return v ? *v : a.pos.size() > 1 ? a.pos[1] : Value::none();
    }
  }
  fail(std::string("'") + type_name(obj) + "' object has no method '" + name + "'");
}

bool has_method(const Value& obj, const std::string& name) {
  static const char* const kStr[] = {"strip", "lstrip", "rstrip", "split", "startswith", "endswith", "upper", "lower",
                                     "title", "capitalize", "replace", "find", "count", "join"};
  static const char* const kDict[] = {"items", "keys", "values", "get"};
  if (obj.is_string()) return std::any_of(std::begin(kStr), std::end(kStr), [&](const char* m) { return name == m; });
  if (obj.is_dict()) return std::any_of(std::begin(kDict), std::end(kDict), [&](const char* m) { return name == m; });
  return false;
}

}  // namespace

std::optional<Value> bound_method(const Value& obj, const std::string& name) {
  static const char* const kMutating[] = {"append", "extend", "insert", "pop", "remove", "clear", "update",
                                          "setdefault", "popitem", "sort", "reverse"};
  if ((obj.is_list() || obj.is_dict()) && std::any_of(std::begin(kMutating), std::end(kMutating), [&](const char* m) { return name == m; }))
    fail(std::string("access to '") + type_name(obj) + "." + name + "' is unsafe: templates cannot change values "
         "(transformers renders in an immutable sandbox)");
  if (!has_method(obj, name)) return std::nullopt;
  return Value::function([obj, name](Args& a) { return method(obj, name, a); });
}

}  // namespace hps::text::jinja
