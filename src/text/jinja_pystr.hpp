// Python's str semantics for the Jinja renderer (text/jinja_*; chat.cpp's llama3 renderer uses py_strip for
// its `| trim`): case mapping, strip, split, replace over code points, and the argument checks the built-ins
// share. Errors are InputErrors.
#pragma once

#include <initializer_list>
#include <string>

#include "text/jinja_value.hpp"

namespace hps::text::jinja {

[[noreturn]] void fail(const std::string& message);
// Argument i (positional) or keyword `kw`; null when absent.
const Value* arg(const Args& a, size_t i, const char* kw);
// Refuses more positional arguments than `names` or a keyword not among them.
void check_args(const Args& a, std::initializer_list<const char*> names, const std::string& what);
const std::string& need_string(const Value& v, const std::string& what);
int64_t need_int(const Value& v, const std::string& what);

std::string py_upper(const std::string& s);
std::string py_lower(const std::string& s);
std::string py_title(const std::string& s);       // str.title()
std::string py_capitalize(const std::string& s);  // str.capitalize()
std::string jinja_title(const std::string& s);    // the `title` filter (splits on '-', space, brackets)
// str.strip([chars]) / lstrip / rstrip: Unicode whitespace, or the code points of chars.
std::string py_strip(const std::string& s, const Value* chars, bool left, bool right);
Value py_split(const std::string& s, const Value* sep, const Value* maxsplit);
std::string py_replace(const std::string& s, const std::string& old, const std::string& rep, int64_t count);
// str.startswith / endswith with a string or a tuple of strings.
bool affix(const std::string& s, const Value& what, bool prefix);
int64_t cp_count(std::string_view s);
// Attribute paths like "a.b" or "0" as Jinja's make_attrgetter reads them.
Value attr_path(const Value& v, const std::string& path);

}  // namespace hps::text::jinja
