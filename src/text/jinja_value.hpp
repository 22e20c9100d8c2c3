// The values a chat template computes with, modelled on the Python objects Jinja2 hands around (what
// transformers' apply_chat_template renders with): None, bool, int, float, str, list/tuple, dict, callables
// and namespace(), plus Jinja's Undefined. Printing, truthiness, equality and ordering follow Python's rules
// so that `{{ x }}` writes what Python's str(x) writes; tojson is Python's json.dumps.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hps::text::jinja {

struct Value;
using List = std::vector<Value>;

// A Python dict with string keys, in insertion order (what json.loads builds and templates iterate).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value v);
};

// Positional and keyword arguments of a call, filter or test (the operand of a filter is not among them).
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};
using Function = std::function<Value(Args&)>;

struct Value {
  enum class Kind { undefined, none, boolean, integer, floating, string, list, dict, function, ns };
  Kind kind = Kind::undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                  // a string's UTF-8 text; an undefined value's name
  bool tuple = false;             // a list that prints as a tuple: (a, b)
  std::shared_ptr<List> list;     // list; shared only by reference-like copies (lists are immutable here)
  std::shared_ptr<Dict> dict;     // dict, or a namespace's attributes (shared: namespaces are mutable)
  std::shared_ptr<Function> fn;   // function

  static Value undefined(std::string name = "") { Value v; v.s = std::move(name); return v; }
  static Value none() { Value v; v.kind = Kind::none; return v; }
  static Value boolean(bool x) { Value v; v.kind = Kind::boolean; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.kind = Kind::integer; v.i = x; return v; }
  static Value floating(double x) { Value v; v.kind = Kind::floating; v.f = x; return v; }
  static Value string(std::string x) { Value v; v.kind = Kind::string; v.s = std::move(x); return v; }
  static Value make_list(List items, bool as_tuple = false);
  static Value make_dict(Dict d = {});
  static Value make_namespace(Dict d = {});
  static Value function(Function f);

  bool is_undefined() const { return kind == Kind::undefined; }
  bool is_number() const { return kind == Kind::integer || kind == Kind::floating || kind == Kind::boolean; }
  bool is_string() const { return kind == Kind::string; }
  bool is_list() const { return kind == Kind::list; }
  bool is_dict() const { return kind == Kind::dict; }
  double as_double() const { return kind == Kind::floating ? f : kind == Kind::boolean ? b : static_cast<double>(i); }
};

// Python's type name of a value, for error messages ("str", "list", "NoneType", …).
const char* type_name(const Value& v);
// bool(x): empty strings/containers, 0, None and Undefined are false.
bool truthy(const Value& v);
// str(x) — what `{{ x }}` prints (Undefined prints nothing) — and repr(x), used inside containers.
std::string str(const Value& v);
std::string repr(const Value& v);
// Python's repr of a float: the shortest round-trip digits, exponent form below 1e-4 and from 1e16.
std::string float_repr(double d);
// x == y with Python's rules (1 == 1.0 == True; lists and dicts compare element-wise).
bool equals(const Value& a, const Value& b);
// -1, 0 or 1 for x < y on numbers, strings or lists; InputError for other types.
int compare(const Value& a, const Value& b);

struct JsonOptions {
  int indent = -1;                      // -1: one line
  std::string indent_text;              // a string indent (json.dumps(indent='\t')); overrides `indent`
  std::string item_sep, key_sep;       // empty: json.dumps' defaults for the indent
  bool sort_keys = false, ensure_ascii = false;
};
// json.dumps(x, …) as transformers' tojson filter calls it (ensure_ascii=False by default).
std::string to_json_text(const Value& v, const JsonOptions& o = {});
// The value of parsed JSON (objects keep their key order).
Value from_json(const nlohmann::ordered_json& j);

// Code-point view of a UTF-8 string, for Python's len / indexing / slicing of str.
std::vector<std::string_view> code_points(std::string_view s);

}  // namespace hps::text::jinja
