// Jinja's built-in filters and tests and the Python str / dict methods templates call, as
// transformers' ImmutableSandboxedEnvironment exposes them (no mutating methods: list.append is refused
// there too). Internal to text/jinja_*; errors are InputErrors the renderer prefixes with the line.
#pragma once

#include <optional>
#include <string>

#include "text/jinja_value.hpp"

namespace hps::text::jinja {

// x | name(args…). InputError for an unknown filter (named) or bad arguments.
Value call_filter(const std::string& name, const Value& x, Args& args);
// x is name(args…).
bool call_test(const std::string& name, const Value& x, Args& args);
// obj.name as a bound method (str.strip, dict.items, …), or nullopt when obj has no such method.
std::optional<Value> bound_method(const Value& obj, const std::string& name);
// The items `for` walks: a list's items, a dict's keys, a string's characters; nothing for Undefined.
List iterate(const Value& v);
// Python's len(): code points of a string, items of a list or dict.
int64_t length(const Value& v);

}  // namespace hps::text::jinja
