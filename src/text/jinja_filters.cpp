// Jinja2's built-in filters and tests (jinja2/filters.py, jinja2/tests.py) with transformers' tojson.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

#include "core/error.hpp"
#include "text/jinja_builtins.hpp"
#include "text/jinja_pystr.hpp"

namespace hps::text::jinja {

namespace {

using FilterFn = Value (*)(const Value&, Args&);

bool opt_bool(const Args& a, size_t i, const char* kw, bool def) {
  const Value* v = arg(a, i, kw);
  return v ? truthy(*v) : def;
}

// Sort / unique / min / max key: the attribute (if named), lowered when not case-sensitive.
Value sort_key(const Value& v, const Value* attribute, bool case_sensitive) {
  Value k = attribute && attribute->kind != Value::Kind::none ? attr_path(v, str(*attribute)) : v;
  if (!case_sensitive && k.is_string()) k.s = py_lower(k.s);
  return k;
}

List sorted(List items, const Value* attribute, bool case_sensitive, bool reverse) {
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    const int c = compare(sort_key(x, attribute, case_sensitive), sort_key(y, attribute, case_sensitive));
    return reverse ? c > 0 : c < 0;
  });
  return items;
}

Value f_default(const Value& x, Args& a) {
  check_args(a, {"default_value", "boolean"}, "default");
  const Value* d = arg(a, 0, "default_value");
  const bool use = x.is_undefined() || (opt_bool(a, 1, "boolean", false) && !truthy(x));
  return use ? (d ? *d : Value::string("")) : x;
}

Value f_tojson(const Value& x, Args& a) {  // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  check_args(a, {"ensure_ascii", "indent", "separators", "sort_keys"}, "tojson");
  JsonOptions o;
  o.ensure_ascii = opt_bool(a, 0, "ensure_ascii", false);
  if (const Value* i = arg(a, 1, "indent"); i && i->is_string()) {
    o.indent_text = i->s;
    o.indent = 0;
  } else if (i && i->kind != Value::Kind::none) {
    o.indent = static_cast<int>(std::clamp<int64_t>(need_int(*i, "tojson indent"), 0, 64));
  }
  if (const Value* s = arg(a, 2, "separators"); s && s->kind != Value::Kind::none) {
    if (!s->is_list() || s->list->size() != 2) fail("tojson: separators must be an (item, key) pair");
    o.item_sep = need_string((*s->list)[0], "tojson separators"), o.key_sep = need_string((*s->list)[1], "tojson separators");
  }
  o.sort_keys = opt_bool(a, 3, "sort_keys", false);
  return Value::string(to_json_text(x, o));
}

Value f_join(const Value& x, Args& a) {
  check_args(a, {"d", "attribute"}, "join");
  const Value* sep = arg(a, 0, "d");
  const Value* attribute = arg(a, 1, "attribute");
  std::string out;
  bool first = true;
  for (const Value& v : iterate(x)) {
    out += (first ? "" : sep ? str(*sep) : "") + str(attribute ? attr_path(v, str(*attribute)) : v);
    first = false;
  }
  return Value::string(out);
}

Value f_indent(const Value& x, Args& a) {
  check_args(a, {"width", "first", "blank"}, "indent");
  const Value* w = arg(a, 0, "width");
  const std::string ind = !w ? "    " : w->is_string() ? w->s : std::string(static_cast<size_t>(std::max<int64_t>(0, need_int(*w, "indent"))), ' ');
  std::vector<std::string> lines;  // (s + "\n").splitlines()
  const std::string s = str(x) + "\n";
  for (size_t b = 0, e; (e = s.find('\n', b)) != std::string::npos; b = e + 1) lines.push_back(s.substr(b, e - b));
  std::string rv = lines[0];
  for (size_t k = 1; k < lines.size(); ++k)
    rv += "\n" + (lines[k].empty() && !opt_bool(a, 2, "blank", false) ? "" : ind) + lines[k];
  return Value::string(opt_bool(a, 1, "first", false) ? ind + rv : rv);
}

Value f_int(const Value& x, Args& a) {
  check_args(a, {"default", "base"}, "int");
  const Value* d = arg(a, 0, "default");
  if (x.kind == Value::Kind::integer || x.kind == Value::Kind::boolean) return Value::integer(need_int(x, "int"));
  if (x.kind == Value::Kind::floating && std::isfinite(x.f)) return Value::integer(static_cast<int64_t>(x.f));
  if (x.is_string()) {
    const std::string t = py_strip(x.s, nullptr, true, true);
    int64_t i = 0;
    if (auto r = std::from_chars(t.data(), t.data() + t.size(), i); r.ec == std::errc() && r.ptr == t.data() + t.size()) return Value::integer(i);
    double f = 0;
    if (auto r = std::from_chars(t.data(), t.data() + t.size(), f); r.ec == std::errc() && r.ptr == t.data() + t.size() && std::isfinite(f))
      return Value::integer(static_cast<int64_t>(f));
  }
  return d ? *d : Value::integer(0);
}

Value f_float(const Value& x, Args& a) {
  check_args(a, {"default"}, "float");
  if (x.is_number()) return Value::floating(x.as_double());
  if (x.is_string()) {
    const std::string t = py_strip(x.s, nullptr, true, true);
    double f = 0;
    if (auto r = std::from_chars(t.data(), t.data() + t.size(), f); r.ec == std::errc() && r.ptr == t.data() + t.size()) return Value::floating(f);
  }
  const Value* d = arg(a, 0, "default");
  return d ? *d : Value::floating(0);
}

Value f_round(const Value& x, Args& a) {
  check_args(a, {"precision", "method"}, "round");
  const Value* p = arg(a, 0, "precision");
  const Value* m = arg(a, 1, "method");
  const std::string method = m ? str(*m) : "common";
  const int64_t digits = p ? need_int(*p, "round") : 0;
  if (method == "common") {
    if (x.kind == Value::Kind::integer && digits >= 0) return x;  // Python: round(int, n) is that int
    if (digits >= 0 && digits <= 30) {
      // Python's round() rounds the exact binary value (2.675 is 2.67499…) half to even, as printf does.
      char buf[512];
      std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(digits), x.as_double());
      return Value::floating(std::strtod(buf, nullptr));
    }
  }
  const double scale = std::pow(10.0, static_cast<double>(digits));
  const double v = x.as_double() * scale;
  double r;
  if (method == "common") r = std::nearbyint(v);
  else if (method == "ceil") r = std::ceil(v);
  else if (method == "floor") r = std::floor(v);
  else fail("round: method must be common, ceil or floor");
  return Value::floating(r / scale);
}

// select / reject / selectattr / rejectattr: keep items whose (attribute's) test result is `keep`.
Value select_items(const Value& x, Args& a, bool keep, bool by_attr) {
  const size_t first = by_attr ? 1 : 0;
  if (by_attr && a.pos.empty()) fail("selectattr/rejectattr need an attribute name");
  std::string test = a.pos.size() > first ? need_string(a.pos[first], "select test") : "";
  Args targs;
  targs.pos.assign(a.pos.begin() + static_cast<std::ptrdiff_t>(std::min(a.pos.size(), first + 1)), a.pos.end());
  targs.kw = a.kw;
  List out;
  for (const Value& v : iterate(x)) {
    const Value subject = by_attr ? attr_path(v, str(a.pos[0])) : v;
    Args t = targs;
    const bool r = test.empty() ? truthy(subject) : call_test(test, subject, t);
    if (r == keep) out.push_back(v);
  }
  return Value::make_list(std::move(out));
}

Value f_map(const Value& x, Args& a) {
  List out;
  const Value* attribute = nullptr;
  const Value* def = nullptr;
  for (const auto& [k, v] : a.kw) {
    if (k == "attribute") attribute = &v;
    else if (k == "default") def = &v;
  }
  for (const Value& v : iterate(x)) {
    if (attribute) {
      Value r = attr_path(v, str(*attribute));
      out.push_back(r.is_undefined() && def ? *def : r);
    } else {
      if (a.pos.empty()) fail("map needs a filter name or attribute=");
      Args fa;
      fa.pos.assign(a.pos.begin() + 1, a.pos.end());
      fa.kw = a.kw;
      out.push_back(call_filter(need_string(a.pos[0], "map"), v, fa));
    }
  }
  return Value::make_list(std::move(out));
}

Value extreme(const Value& x, Args& a, bool want_max) {
  check_args(a, {"case_sensitive", "attribute"}, want_max ? "max" : "min");
  const List items = iterate(x);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const bool cs = opt_bool(a, 0, "case_sensitive", false);
  const Value* attribute = arg(a, 1, "attribute");
  const Value* best = &items[0];
  for (const Value& v : items) {
    const int c = compare(sort_key(v, attribute, cs), sort_key(*best, attribute, cs));
    if (want_max ? c > 0 : c < 0) best = &v;
  }
  return *best;
}

Value add(const Value& x, const Value& y) {
  if (x.kind == Value::Kind::floating || y.kind == Value::Kind::floating) return Value::floating(x.as_double() + y.as_double());
  return Value::integer(need_int(x, "sum") + need_int(y, "sum"));
}

std::string escape_html(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

const std::unordered_map<std::string, FilterFn>& filters() {
  static const std::unordered_map<std::string, FilterFn> f = {
      {"default", f_default},
      {"d", f_default},
      {"tojson", f_tojson},
      {"join", f_join},
      {"indent", f_indent},
      {"int", f_int},
      {"float", f_float},
      {"round", f_round},
      {"map", f_map},
      {"select", [](const Value& x, Args& a) { return select_items(x, a, true, false); }},
      {"reject", [](const Value& x, Args& a) { return select_items(x, a, false, false); }},
      {"selectattr", [](const Value& x, Args& a) { return select_items(x, a, true, true); }},
      {"rejectattr", [](const Value& x, Args& a) { return select_items(x, a, false, true); }},
      {"max", [](const Value& x, Args& a) { return extreme(x, a, true); }},
      {"min", [](const Value& x, Args& a) { return extreme(x, a, false); }},
      {"trim", [](const Value& x, Args& a) {
         check_args(a, {"chars"}, "trim");
         return Value::string(py_strip(str(x), arg(a, 0, "chars"), true, true));
       }},
      {"length", [](const Value& x, Args&) { return Value::integer(length(x)); }},
      {"count", [](const Value& x, Args&) { return Value::integer(length(x)); }},
      {"string", [](const Value& x, Args&) { return Value::string(str(x)); }},
      {"safe", [](const Value& x, Args&) { return x; }},
      {"escape", [](const Value& x, Args&) { return Value::string(escape_html(str(x))); }},
      {"e", [](const Value& x, Args&) { return Value::string(escape_html(str(x))); }},
      {"upper", [](const Value& x, Args&) { return Value::string(py_upper(str(x))); }},
      {"lower", [](const Value& x, Args&) { return Value::string(py_lower(str(x))); }},
      {"title", [](const Value& x, Args&) { return Value::string(jinja_title(str(x))); }},
      {"capitalize", [](const Value& x, Args&) { return Value::string(py_capitalize(str(x))); }},
      {"replace", [](const Value& x, Args& a) {
         check_args(a, {"old", "new", "count"}, "replace");
         if (a.pos.size() < 2) fail("replace takes the old and new strings");
         const Value* n = arg(a, 2, "count");
         return Value::string(py_replace(str(x), str(a.pos[0]), str(a.pos[1]), n && n->kind != Value::Kind::none ? need_int(*n, "replace") : -1));
       }},
      {"abs", [](const Value& x, Args&) {
         if (x.kind == Value::Kind::floating) return Value::floating(std::fabs(x.f));
         const int64_t i = need_int(x, "abs");
         return Value::integer(i < 0 ? -i : i);
       }},
      {"first", [](const Value& x, Args&) {
         const List items = iterate(x);
         return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
       }},
      {"last", [](const Value& x, Args&) {
         const List items = iterate(x);
         return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
       }},
      {"list", [](const Value& x, Args&) { return Value::make_list(iterate(x)); }},
      {"reverse", [](const Value& x, Args&) {
         List items = iterate(x);
         std::reverse(items.begin(), items.end());
         if (!x.is_string()) return Value::make_list(std::move(items));
         std::string s;
         for (const Value& c : items) s += c.s;
         return Value::string(s);
       }},
      {"items", [](const Value& x, Args& a) {
         if (x.is_undefined()) return Value::make_list({});
         if (!x.is_dict()) fail(std::string("items: expected a mapping, got ") + type_name(x));
         Value m = *bound_method(x, "items");
         return (*m.fn)(a);
       }},
      {"dictsort", [](const Value& x, Args& a) {
         check_args(a, {"case_sensitive", "by", "reverse"}, "dictsort");
         if (!x.is_dict()) fail(std::string("dictsort: expected a mapping, got ") + type_name(x));
         const Value* by = arg(a, 1, "by");
         const Value pos = Value::string(by && str(*by) == "value" ? "1" : "0");
         List items;
         for (const auto& [k, v] : x.dict->items) items.push_back(Value::make_list({Value::string(k), v}, true));
         return Value::make_list(sorted(std::move(items), &pos, opt_bool(a, 0, "case_sensitive", false), opt_bool(a, 2, "reverse", false)));
       }},
      {"sort", [](const Value& x, Args& a) {
         check_args(a, {"reverse", "case_sensitive", "attribute"}, "sort");
         return Value::make_list(sorted(iterate(x), arg(a, 2, "attribute"), opt_bool(a, 1, "case_sensitive", false), opt_bool(a, 0, "reverse", false)));
       }},
      {"unique", [](const Value& x, Args& a) {
         check_args(a, {"case_sensitive", "attribute"}, "unique");
         const bool cs = opt_bool(a, 0, "case_sensitive", false);
         const Value* attribute = arg(a, 1, "attribute");
         List out, seen;
         for (const Value& v : iterate(x)) {
           const Value k = sort_key(v, attribute, cs);
           if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) seen.push_back(k), out.push_back(v);
         }
         return Value::make_list(std::move(out));
       }},
      {"sum", [](const Value& x, Args& a) {
         check_args(a, {"attribute", "start"}, "sum");
         const Value* attribute = arg(a, 0, "attribute");
         const Value* start = arg(a, 1, "start");
         Value total = start ? *start : Value::integer(0);
         for (const Value& v : iterate(x)) total = add(total, attribute ? attr_path(v, str(*attribute)) : v);
         return total;
       }},
  };
  return f;
}

using TestFn = bool (*)(const Value&, Args&);

const Value& one_arg(const Args& a, const char* test) {
  if (a.pos.size() != 1) fail(std::string("test '") + test + "' takes one argument");
  return a.pos[0];
}

const std::unordered_map<std::string, TestFn>& tests() {
  using K = Value::Kind;
  static const std::unordered_map<std::string, TestFn> t = {
      {"defined", [](const Value& x, Args&) { return !x.is_undefined(); }},
      {"undefined", [](const Value& x, Args&) { return x.is_undefined(); }},
      {"none", [](const Value& x, Args&) { return x.kind == K::none; }},
      {"boolean", [](const Value& x, Args&) { return x.kind == K::boolean; }},
      {"true", [](const Value& x, Args&) { return x.kind == K::boolean && x.b; }},
      {"false", [](const Value& x, Args&) { return x.kind == K::boolean && !x.b; }},
      {"integer", [](const Value& x, Args&) { return x.kind == K::integer; }},
      {"float", [](const Value& x, Args&) { return x.kind == K::floating; }},
      {"number", [](const Value& x, Args&) { return x.is_number(); }},
      {"string", [](const Value& x, Args&) { return x.is_string(); }},
      {"mapping", [](const Value& x, Args&) { return x.is_dict(); }},
      {"iterable", [](const Value& x, Args&) { return x.is_string() || x.is_list() || x.is_dict() || x.is_undefined(); }},
      {"sequence", [](const Value& x, Args&) { return x.is_string() || x.is_list() || x.is_dict(); }},
      {"callable", [](const Value& x, Args&) { return x.kind == K::function; }},
      // str.islower() / isupper(): at least one cased character, and no cased one of the other case
      {"lower", [](const Value& x, Args&) { return x.is_string() && py_upper(x.s) != x.s && py_lower(x.s) == x.s; }},
      {"upper", [](const Value& x, Args&) { return x.is_string() && py_lower(x.s) != x.s && py_upper(x.s) == x.s; }},
      {"even", [](const Value& x, Args&) { return need_int(x, "even") % 2 == 0; }},
      {"odd", [](const Value& x, Args&) { return need_int(x, "odd") % 2 != 0; }},
      {"divisibleby", [](const Value& x, Args& a) {
         const int64_t d = need_int(one_arg(a, "divisibleby"), "divisibleby");
         if (d == 0) fail("divisibleby: division by zero");
         return need_int(x, "divisibleby") % d == 0;
       }},
      {"eq", [](const Value& x, Args& a) { return equals(x, one_arg(a, "eq")); }},
      {"equalto", [](const Value& x, Args& a) { return equals(x, one_arg(a, "equalto")); }},
      {"==", [](const Value& x, Args& a) { return equals(x, one_arg(a, "==")); }},
      {"ne", [](const Value& x, Args& a) { return !equals(x, one_arg(a, "ne")); }},
      {"!=", [](const Value& x, Args& a) { return !equals(x, one_arg(a, "!=")); }},
      {"lt", [](const Value& x, Args& a) { return compare(x, one_arg(a, "lt")) < 0; }},
      {"<", [](const Value& x, Args& a) { return compare(x, one_arg(a, "<")) < 0; }},
      {"lessthan", [](const Value& x, Args& a) { return compare(x, one_arg(a, "lessthan")) < 0; }},
      {"le", [](const Value& x, Args& a) { return compare(x, one_arg(a, "le")) <= 0; }},
      {"<=", [](const Value& x, Args& a) { return compare(x, one_arg(a, "<=")) <= 0; }},
      {"gt", [](const Value& x, Args& a) { return compare(x, one_arg(a, "gt")) > 0; }},
      {">", [](const Value& x, Args& a) { return compare(x, one_arg(a, ">")) > 0; }},
      {"greaterthan", [](const Value& x, Args& a) { return compare(x, one_arg(a, "greaterthan")) > 0; }},
      {"ge", [](const Value& x, Args& a) { return compare(x, one_arg(a, "ge")) >= 0; }},
      {">=", [](const Value& x, Args& a) { return compare(x, one_arg(a, ">=")) >= 0; }},
      {"sameas", [](const Value& x, Args& a) {
         const Value& y = one_arg(a, "sameas");
         return x.kind == y.kind && (x.kind == K::none || x.kind == K::undefined || equals(x, y));
       }},
      {"in", [](const Value& x, Args& a) {
         const Value& c = one_arg(a, "in");
         if (c.is_string()) return c.s.find(need_string(x, "in")) != std::string::npos;
         if (c.is_dict()) return x.is_string() && c.dict->find(x.s) != nullptr;
         const List items = iterate(c);
         return std::any_of(items.begin(), items.end(), [&](const Value& v) { return equals(v, x); });
       }},
  };
  return t;
}

}  // namespace

Value call_filter(const std::string& name, const Value& x, Args& args) {
  const auto& f = filters();
  const auto it = f.find(name);
  if (it == f.end()) fail("no filter named '" + name + "'");
  return it->second(x, args);
}

bool call_test(const std::string& name, const Value& x, Args& args) {
  const auto& t = tests();
  const auto it = t.find(name);
  if (it == t.end()) fail("no test named '" + name + "'");
  return it->second(x, args);
}

}  // namespace hps::text::jinja
