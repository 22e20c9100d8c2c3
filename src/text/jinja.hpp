// A Jinja2 interpreter for the subset Hugging Face chat templates use, rendering exactly what transformers'
// apply_chat_template renders (its ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loop
// controls, the {% generation %} tag, tojson without HTML escaping, raise_exception and strftime_now).
//
//   statements   if / elif / else, for (loop.*, else, `if` filter, tuple targets), break / continue,
//                set (names, namespace attributes, blocks), macro, generation, raw, comments
//   expressions  literals, lists / tuples / dicts, attribute and item access, slicing, calls, filters,
//                tests, + - * / // % ** ~, comparisons (chained), in / not in, and / or / not, a if c else b
//   globals      range, namespace, dict, raise_exception, strftime_now
// Parity: tests/text/test_jinja.cpp against tools/fixtures/make_jinja_fixtures.py (Python jinja2 through
// transformers). Unsupported constructs (include, extends, call blocks, recursive loops) are syntax errors.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "text/jinja_value.hpp"

namespace hps::text::jinja {

struct RenderOptions {
  std::optional<std::tm> now;        // what strftime_now formats (default: the local time)
  size_t max_output = size_t{64} << 20;  // a bigger rendering is an error (a runaway loop or string product)
};

class Template {
 public:
  // ConfigError "<name> line N: …" on a syntax error.
  explicit Template(std::string_view source, std::string name = "chat_template");
  // InputError "<name> line N: …" when rendering fails (raise_exception's message, an undefined value
  // used, a type error).
  std::string render(const Dict& context, const RenderOptions& options = {}) const;
  const std::string& name() const { return name_; }

 private:
  struct Program;
  std::string name_;
  std::shared_ptr<const Program> program_;
};

}  // namespace hps::text::jinja
