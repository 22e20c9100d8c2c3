// The syntax tree of a parsed Jinja template (internal to text/jinja_*): expressions and statements, each
// with the template line it came from for error messages.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja_value.hpp"

namespace hps::text::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    literal,  // value
    name,     // name
    list,     // kids: items (tuple = true for a tuple literal)
    dict,     // kids: key, value, key, value, …
    attr,     // kids[0].name
    item,     // kids[0][kids[1]]
    slice,    // kids[0][kids[1]:kids[2]:kids[3]] (absent parts are null)
    call,     // kids[0](kids[1..], kwargs)
    filter,   // kids[0] | name(kids[1..], kwargs)
    test,     // kids[0] is [not] name(kids[1..], kwargs)
    unary,    // op kids[0]: "not", "-", "+"
    binary,   // kids[0] op kids[1]: and or + - * / // % ** ~ == != < <= > >= in notin
    cond,     // kids[0] if kids[1] else kids[2] (kids[2] null: Undefined)
  };
  Kind kind = Kind::literal;
  int line = 0;
  Value value;
  std::string name;  // name, attribute, filter, test or operator
  bool tuple = false, negated = false;
  std::vector<ExprPtr> kids;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    text,        // text
    output,      // {{ expr }}
    if_,         // branches: (cond, body)…, an else branch has a null cond
    for_,        // for pattern in expr [if filter]: body [else: else_body]
    set,         // set target.attr = expr, or set pattern = expr
    set_block,   // set target %} body {% endset
    macro,       // macro target(params) body
    break_,
    continue_,
    generation,  // transformers' {% generation %} … {% endgeneration %}: renders its body
  };
  Kind kind = Kind::text;
  int line = 0;
  std::string text;
  std::string target, attr;            // set_block / macro name; set's namespace and attribute
  ExprPtr pattern;                     // for / set: a name or a (nested) tuple of names
  std::vector<ExprPtr> filters;        // set_block's `| f(args)` chain (each a filter without operand)
  ExprPtr expr, filter;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters and defaults (null: none)
};

}  // namespace hps::text::jinja

namespace hps::text::jinja {

// Parses template source with the environment transformers renders chat templates in (trim_blocks,
// lstrip_blocks, loop controls, {% generation %}); a single trailing newline is dropped, as Jinja does.
// ConfigError naming `name` and the line on a syntax error.
Body parse_template(std::string_view source, const std::string& name);

}  // namespace hps::text::jinja
