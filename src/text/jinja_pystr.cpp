#include "text/jinja_pystr.hpp"

#include <algorithm>
#include <utf8proc.h>

#include "core/error.hpp"
#include "text/utf8.hpp"

namespace hps::text::jinja {

void fail(const std::string& m) { throw InputError(m); }

const Value* arg(const Args& a, size_t i, const char* kw) {
  if (i < a.pos.size()) return &a.pos[i];
  for (const auto& [k, v] : a.kw)
    if (k == kw) return &v;
  return nullptr;
}

void check_args(const Args& a, std::initializer_list<const char*> names, const std::string& what) {
  if (a.pos.size() > names.size())
    fail(what + " takes at most " + std::to_string(names.size()) + " argument(s), got " + std::to_string(a.pos.size()));
  for (const auto& kv : a.kw)  // (clang cannot capture a structured binding)
    if (std::none_of(names.begin(), names.end(), [&](const char* n) { return kv.first == n; }))
      fail(what + " got an unexpected keyword argument '" + kv.first + "'");
}

const std::string& need_string(const Value& v, const std::string& what) {
  if (!v.is_string()) fail(what + " expects a string, got " + type_name(v));
  return v.s;
}

int64_t need_int(const Value& v, const std::string& what) {
  if (v.kind == Value::Kind::integer) return v.i;
  if (v.kind == Value::Kind::boolean) return v.b;
  fail(what + " expects an integer, got " + type_name(v));
}

namespace {

// Code-point case mapping (utf8proc's simple mappings; Python's full mappings differ only for a few
// characters such as ß → SS).
template <class F>
std::string map_cps(const std::string& s, F f) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i += utf8_len(static_cast<unsigned char>(s[i]))) append_utf8(out, f(decode_at(s, i), i));
  return out;
}

bool is_cased(char32_t c) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

}  // namespace

std::string py_upper(const std::string& s) {
  std::string out = map_cps(s, [](char32_t c, size_t) {
    return c == U'\u00DF' ? c : static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
  });
  return py_replace(out, "\u00DF", "SS", -1);  // Python's full mapping: ß → SS
}
std::string py_lower(const std::string& s) { return map_cps(s, [](char32_t c, size_t) { return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))); }); }
// Python's str.title(): a cased character after an uncased one is title-cased, the rest lowered.
std::string py_title(const std::string& s) {
  bool prev_cased = false;
  return map_cps(s, [&](char32_t c, size_t) {
    const auto x = static_cast<utf8proc_int32_t>(c);
    const char32_t r = static_cast<char32_t>(prev_cased ? utf8proc_tolower(x) : utf8proc_totitle(x));
    prev_cased = is_cased(c);
    return r;
  });
}
std::string py_capitalize(const std::string& s) {
  return map_cps(s, [](char32_t c, size_t i) {
    const auto x = static_cast<utf8proc_int32_t>(c);
    return static_cast<char32_t>(i == 0 ? utf8proc_totitle(x) : utf8proc_tolower(x));
  });
}
// Jinja's title filter: capitalize each piece after a run of '-', whitespace, or an opening bracket.
std::string jinja_title(const std::string& s) {
  std::string out, word;
  auto flush = [&] { out += py_capitalize(word), word.clear(); };
  for (size_t i = 0; i < s.size(); i += utf8_len(static_cast<unsigned char>(s[i]))) {
    const char32_t c = decode_at(s, i);
    const bool delim = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_unicode_whitespace(c);
    if (delim) flush(), append_utf8(out, c);
    else append_utf8(word, c);
  }
  flush();
  return out;
}

// str.strip([chars]) / lstrip / rstrip: Unicode whitespace, or the code points of chars.
std::string py_strip(const std::string& s, const Value* chars, bool left, bool right) {
  std::vector<char32_t> set;
  const bool ws = !chars || chars->kind == Value::Kind::none;
  if (!ws)
    for (auto cp : code_points(need_string(*chars, "strip"))) set.push_back(decode_at(cp, 0));
  auto strip_it = [&](char32_t c) { return ws ? is_unicode_whitespace(c) : std::find(set.begin(), set.end(), c) != set.end(); };
  const auto cps = code_points(s);
  size_t b = 0, e = cps.size();
  while (left && b < e && strip_it(decode_at(cps[b], 0))) ++b;
  while (right && e > b && strip_it(decode_at(cps[e - 1], 0))) --e;
  if (b == e) return "";
  return std::string(cps[b].data(), static_cast<size_t>(cps[e - 1].data() + cps[e - 1].size() - cps[b].data()));
}

Value py_split(const std::string& s, const Value* sep, const Value* maxsplit_v) {
  int64_t maxsplit = maxsplit_v ? need_int(*maxsplit_v, "split") : -1;
  List out;
  if (!sep || sep->kind == Value::Kind::none) {  // runs of whitespace; no empty pieces
    const auto cps = code_points(s);
    size_t k = 0;
    for (;;) {
      while (k < cps.size() && is_unicode_whitespace(decode_at(cps[k], 0))) ++k;
      if (k == cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        std::string rest(cps[k].data(), static_cast<size_t>(s.data() + s.size() - cps[k].data()));
        out.push_back(Value::string(py_strip(rest, nullptr, false, true)));
        break;
      }
      size_t e = k;
      while (e < cps.size() && !is_unicode_whitespace(decode_at(cps[e], 0))) ++e;
      out.push_back(Value::string(std::string(cps[k].data(), static_cast<size_t>(cps[e - 1].data() + cps[e - 1].size() - cps[k].data()))));
      k = e;
    }
    return Value::make_list(std::move(out));
  }
  const std::string& d = need_string(*sep, "split");
  if (d.empty()) fail("split: empty separator");
  size_t b = 0;
  for (size_t f; (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) && (f = s.find(d, b)) != std::string::npos; b = f + d.size())
    out.push_back(Value::string(s.substr(b, f - b)));
  out.push_back(Value::string(s.substr(b)));
  return Value::make_list(std::move(out));
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& rep, int64_t count) {
  std::string out;
  size_t b = 0;
  int64_t n = 0;
  if (old.empty()) {  // Python inserts `rep` around every character
    const auto cps = code_points(s);
    for (size_t k = 0; k <= cps.size(); ++k) {
      if (count < 0 || n < count) out += rep, ++n;
      if (k < cps.size()) out += cps[k];
    }
    return out;
  }
  for (size_t f; (count < 0 || n < count) && (f = s.find(old, b)) != std::string::npos; b = f + old.size(), ++n)
    out += s.substr(b, f - b) + rep;
  return out + s.substr(b);
}

bool affix(const std::string& s, const Value& what, bool prefix) {
  auto one = [&](const std::string& a) {
    return a.size() <= s.size() && s.compare(prefix ? 0 : s.size() - a.size(), a.size(), a) == 0;
  };
  if (what.is_list()) return std::any_of(what.list->begin(), what.list->end(), [&](const Value& v) { return one(need_string(v, "startswith/endswith")); });
  return one(need_string(what, "startswith/endswith"));
}

int64_t cp_count(std::string_view s) { return static_cast<int64_t>(code_points(s).size()); }

// Looks up attribute paths like "a.b" or "0" the way Jinja's make_attrgetter does.
Value attr_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t b = 0;
  for (;;) {
    const size_t e = path.find('.', b);
    const std::string part = path.substr(b, e == std::string::npos ? std::string::npos : e - b);
    if (cur.is_dict() || cur.kind == Value::Kind::ns) {
      const Value* x = cur.dict->find(part);
      cur = x ? *x : Value::undefined("'dict object' has no attribute '" + part + "'");
    } else if (cur.is_list() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      const auto k = std::stoull(part);
      cur = k < cur.list->size() ? (*cur.list)[k] : Value::undefined("list index out of range");
    } else {
      cur = Value::undefined(std::string("'") + type_name(cur) + " object' has no attribute '" + part + "'");
    }
    if (e == std::string::npos) return cur;
    b = e + 1;
  }
}

}  // namespace hps::text::jinja
