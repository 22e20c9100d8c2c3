// The tree-walking renderer: statements write to one output string; `set` inside a for loop stays in the
// loop's scope (Jinja's rule — hence namespace()); a macro sees its arguments and the template's top level.
#include <climits>
#include <cmath>

#include "core/error.hpp"
#include "text/jinja.hpp"
#include "text/jinja_ast.hpp"
#include "text/jinja_builtins.hpp"
#include "text/jinja_pystr.hpp"

namespace hps::text::jinja {

struct Template::Program {
  Body body;
};

namespace {

enum class Flow { normal, break_, continue_ };

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE
constexpr int kMaxDepth = 64;          // macro calls nested deeper are an error, not a stack overflow
constexpr int kMaxEvalDepth = 1000;    // likewise a chain like 1+1+…+1 (a left-deep tree)

// transformers' TemplateNamespace refuses these (they could reach Python internals).
void check_namespace_name(const std::string& name) {
  if (!name.empty() && name[0] == '_')
    fail("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" + name + "'. Please rename the attribute.");
}

[[noreturn]] void fail_undefined(const Value& v) { fail(v.s.empty() ? "undefined value used" : v.s); }

Value arith(const std::string& op, const Value& a, const Value& b, size_t max_len);
int64_t checked(bool overflow, int64_t v);
Value repeat(const Value& seq, int64_t times, size_t max_len);

class Interp {
 public:
  Interp(const Dict& ctx, const RenderOptions& o) : opt_(o) { frames_.push_back(ctx); }
  std::string run(const Body& b) {
    exec(b);
    return std::move(out_);
  }
  int line() const { return line_; }

 private:
  void write(const std::string& s) {
    if (out_.size() + s.size() > opt_.max_output)
      fail("the rendering exceeds " + std::to_string(opt_.max_output) + " bytes");
    out_ += s;
  }

  Flow exec(const Body& b) {
    for (const auto& n : b)
      if (const Flow f = exec(*n); f != Flow::normal) return f;
    return Flow::normal;
  }

  Flow exec(const Node& n) {
    line_ = n.line;
    switch (n.kind) {
      case Node::Kind::text: write(n.text); return Flow::normal;
      case Node::Kind::output: write(str(eval(*n.expr))); return Flow::normal;
      case Node::Kind::if_:
        for (const auto& [cond, body] : n.branches)
          if (!cond || truthy(eval(*cond))) return exec(body);
        return Flow::normal;
      case Node::Kind::for_: return loop(n);
      case Node::Kind::set: {
        Value v = eval(*n.expr);
        if (n.attr.empty()) {
          assign(frames_.size() - 1, *n.pattern, v);
          return Flow::normal;
        }
        const Value ns = lookup(n.target);
        if (ns.kind != Value::Kind::ns) fail("cannot assign attribute '" + n.attr + "' on '" + n.target + "': not a namespace()");
        check_namespace_name(n.attr);
        ns.dict->set(n.attr, std::move(v));
        return Flow::normal;
      }
      case Node::Kind::set_block: {
        std::string saved = std::move(out_);
        out_.clear();
        exec(n.body);
        Value captured = Value::string(std::move(out_));
        out_ = std::move(saved);
        for (const auto& f : n.filters) {
          Args a = eval_args(*f, 1);
          captured = call_filter(f->name, captured, a);
        }
        frames_.back().set(n.target, std::move(captured));
        return Flow::normal;
      }
      case Node::Kind::macro: {
        const Node* def = &n;
        frames_.back().set(n.target, Value::function([this, def](Args& a) { return call_macro(*def, a); }));
        return Flow::normal;
      }
      case Node::Kind::break_: return Flow::break_;
      case Node::Kind::continue_: return Flow::continue_;
      case Node::Kind::generation: return exec(n.body);
    }
    return Flow::normal;
  }

  Flow loop(const Node& n) {
    List items = iterate(eval(*n.expr));
    frames_.push_back({});
    const size_t frame = frames_.size() - 1;
    if (n.filter) {  // `for x in xs if cond`: filtered before loop.* is computed
      List kept;
      for (const Value& v : items) {
        assign(frame, *n.pattern, v);
        if (truthy(eval(*n.filter))) kept.push_back(v);
      }
      items = std::move(kept);
      frames_[frame] = {};
    }
    const auto len = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < len; ++k) {
      assign(frame, *n.pattern, items[static_cast<size_t>(k)]);
      Dict lp;
      lp.items = {{"index", Value::integer(k + 1)},
                  {"index0", Value::integer(k)},
                  {"revindex", Value::integer(len - k)},
                  {"revindex0", Value::integer(len - k - 1)},
                  {"first", Value::boolean(k == 0)},
                  {"last", Value::boolean(k == len - 1)},
                  {"length", Value::integer(len)},
                  {"depth", Value::integer(1)},
                  {"depth0", Value::integer(0)},
                  {"previtem", k > 0 ? items[static_cast<size_t>(k - 1)] : Value::undefined("there is no previous item")},
                  {"nextitem", k + 1 < len ? items[static_cast<size_t>(k + 1)] : Value::undefined("there is no next item")},
                  {"cycle", Value::function([k](Args& a) {
                     if (a.pos.empty()) fail("loop.cycle needs at least one value");
                     return a.pos[static_cast<size_t>(k) % a.pos.size()];
                   })}};
      frames_[frame].set("loop", Value::make_dict(std::move(lp)));
      if (exec(n.body) == Flow::break_) break;
    }
    frames_.pop_back();
    if (len == 0) exec(n.else_body);
    return Flow::normal;
  }

  // Binds a name, or unpacks v into a tuple of names (nested as the pattern is).
  void assign(size_t frame, const Expr& pattern, const Value& v) {
    if (pattern.kind == Expr::Kind::name) {
      frames_[frame].set(pattern.name, v);
      return;
    }
    const List parts = iterate(v);
    if (parts.size() != pattern.kids.size())
      fail("cannot unpack " + std::to_string(parts.size()) + " values into " + std::to_string(pattern.kids.size()) + " names");
    for (size_t k = 0; k < parts.size(); ++k) assign(frame, *pattern.kids[k], parts[k]);
  }

  Value call_macro(const Node& def, Args& a) {
    if (depth_ >= kMaxDepth) fail("macro calls nested deeper than " + std::to_string(kMaxDepth));
    if (a.pos.size() > def.params.size())
      fail("macro '" + def.target + "' takes " + std::to_string(def.params.size()) + " argument(s), got " + std::to_string(a.pos.size()));
    for (const auto& kv : a.kw)
      if (std::none_of(def.params.begin(), def.params.end(), [&](const auto& p) { return p.first == kv.first; }))
        fail("macro '" + def.target + "' has no argument '" + kv.first + "'");
    frames_.push_back({});
    const size_t frame = frames_.size() - 1, saved_base = base_;
    for (size_t k = 0; k < def.params.size(); ++k) {
      const auto& [name, dflt] = def.params[k];
      const Value* given = arg(a, k, name.c_str());
      frames_[frame].set(name, given ? *given : dflt ? eval(*dflt) : Value::undefined("'" + name + "' is undefined"));
    }
    base_ = frame;
    ++depth_;
    std::string saved = std::move(out_);
    out_.clear();
    exec(def.body);
    std::string captured = std::move(out_);
    out_ = std::move(saved);
    --depth_;
    base_ = saved_base;
    frames_.pop_back();
    return Value::string(std::move(captured));
  }

  Value lookup(const std::string& name) const {
    for (size_t k = frames_.size(); k-- > base_;)
      if (const Value* v = frames_[k].find(name)) return *v;
    if (base_ > 0)
      if (const Value* v = frames_[0].find(name)) return *v;
    return global(name);
  }

  Value global(const std::string& name) const {
    if (name == "raise_exception")
      return Value::function([](Args& a) -> Value { fail(a.pos.empty() ? std::string("raise_exception") : str(a.pos[0])); });
    if (name == "strftime_now")
      return Value::function([this](Args& a) {
        check_args(a, {"format"}, "strftime_now");
        if (a.pos.size() != 1) fail("strftime_now takes a format string");
        std::tm t{};
        if (opt_.now) {
          t = *opt_.now;
        } else {
          const std::time_t now = std::time(nullptr);
          localtime_r(&now, &t);
        }
        char buf[512];
        const size_t n = std::strftime(buf, sizeof buf, need_string(a.pos[0], "strftime_now").c_str(), &t);
        return Value::string(std::string(buf, n));
      });
    if (name == "range") return Value::function(range);
    if (name == "namespace" || name == "dict")
      return Value::function([ns = name == "namespace"](Args& a) {
        Dict d;
        for (const Value& p : a.pos) {
          if (!p.is_dict()) fail("namespace()/dict() take a mapping or keyword arguments");
          for (const auto& [k, v] : p.dict->items) d.set(k, v);
        }
        for (const auto& [k, v] : a.kw) d.set(k, v);
        if (ns)
          for (const auto& [k, v] : d.items) check_namespace_name(k);
        return ns ? Value::make_namespace(std::move(d)) : Value::make_dict(std::move(d));
      });
    return Value::undefined("'" + name + "' is undefined");
  }

  static Value range(Args& a) {
    if (a.pos.empty() || a.pos.size() > 3 || !a.kw.empty()) fail("range takes 1 to 3 integer arguments");
    int64_t start = 0, stop = 0, step = 1;
    if (a.pos.size() == 1) stop = need_int(a.pos[0], "range");
    else start = need_int(a.pos[0], "range"), stop = need_int(a.pos[1], "range");
    if (a.pos.size() == 3) step = need_int(a.pos[2], "range");
    if (step == 0) fail("range() arg 3 must not be zero");
    const long double n = std::max<long double>(0, std::ceil((static_cast<long double>(stop) - start) / step));
    if (n > kMaxRange) fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    List out;
    for (int64_t k = 0, v = start; k < static_cast<int64_t>(n); ++k, v += step) out.push_back(Value::integer(v));
    return Value::make_list(std::move(out));
  }

  Args eval_args(const Expr& e, size_t from) {
    Args a;
    for (size_t k = from; k < e.kids.size(); ++k) a.pos.push_back(eval(*e.kids[k]));
    for (const auto& [name, x] : e.kwargs) a.kw.emplace_back(name, eval(*x));
    return a;
  }

  Value eval(const Expr& e);
  Value binary(const Expr& e);
  Value attr(const Value& obj, const std::string& name);
  Value item(const Value& obj, const Value& key);
  Value slice(const Expr& e);

  const RenderOptions& opt_;
  std::vector<Dict> frames_;  // [0]: the context and top-level sets; then loop and macro scopes
  size_t base_ = 0;           // inside a macro: its frame (the caller's scopes are out of sight)
  std::string out_;
  int line_ = 0, depth_ = 0, eval_depth_ = 0;
};

Value Interp::eval(const Expr& e) {
  line_ = e.line;
  if (++eval_depth_ > kMaxEvalDepth) fail("an expression nested deeper than " + std::to_string(kMaxEvalDepth));
  struct Leave {
    int& d;
    ~Leave() { --d; }
  } leave{eval_depth_};
  switch (e.kind) {
    case Expr::Kind::literal: return e.value;
    case Expr::Kind::name: return lookup(e.name);
    case Expr::Kind::list: {
      List items;
      for (const auto& k : e.kids) items.push_back(eval(*k));
      return Value::make_list(std::move(items), e.tuple);
    }
    case Expr::Kind::dict: {
      Dict d;
      for (size_t k = 0; k + 1 < e.kids.size(); k += 2) {
        const Value key = eval(*e.kids[k]);
        // Keys are strings here; others are kept as json.dumps writes them (1 → "1", True → "true").
        if (key.is_string()) d.set(key.s, eval(*e.kids[k + 1]));
        else if (key.is_number() || key.kind == Value::Kind::none) d.set(to_json_text(key), eval(*e.kids[k + 1]));
        else fail(std::string("unhashable dict key of type '") + type_name(key) + "'");
      }
      return Value::make_dict(std::move(d));
    }
    case Expr::Kind::attr: return attr(eval(*e.kids[0]), e.name);
    case Expr::Kind::item: {
      const Value obj = eval(*e.kids[0]);
      return item(obj, eval(*e.kids[1]));
    }
    case Expr::Kind::slice: return slice(e);
    case Expr::Kind::call: {
      const Value callee = eval(*e.kids[0]);
      Args a = eval_args(e, 1);
      if (callee.is_undefined()) fail_undefined(callee);
      if (callee.kind != Value::Kind::function) fail(std::string("'") + type_name(callee) + "' object is not callable");
      return (*callee.fn)(a);
    }
    case Expr::Kind::filter: {
      const Value x = eval(*e.kids[0]);
      Args a = eval_args(e, 1);
      return call_filter(e.name, x, a);
    }
    case Expr::Kind::test: {
      const Value x = eval(*e.kids[0]);
      Args a = eval_args(e, 1);
      return Value::boolean(call_test(e.name, x, a) != e.negated);
    }
    case Expr::Kind::unary: {
      const Value x = eval(*e.kids[0]);
      if (e.name == "not") return Value::boolean(!truthy(x));
      if (x.is_undefined()) fail_undefined(x);
      if (x.kind == Value::Kind::floating) return Value::floating(e.name == "-" ? -x.f : x.f);
      const int64_t i = need_int(x, "unary " + e.name);
      if (e.name == "-" && i == INT64_MIN) fail("integer overflow");
      return Value::integer(e.name == "-" ? -i : i);
    }
    case Expr::Kind::binary: return binary(e);
    case Expr::Kind::cond:
      if (truthy(eval(*e.kids[1]))) return eval(*e.kids[0]);
      return e.kids[2] ? eval(*e.kids[2]) : Value::undefined("the inline if's condition was false and it has no else");
  }
  return Value::undefined();
}

// and / or (short-circuit, returning the deciding operand), comparisons, membership, ~ and arithmetic.
Value Interp::binary(const Expr& e) {
  if (e.name == "and" || e.name == "or") {  // Python: the deciding operand itself
    Value a = eval(*e.kids[0]);
    if (truthy(a) == (e.name == "or")) return a;
    return eval(*e.kids[1]);
  }
  const Value a = eval(*e.kids[0]);
  const Value b = eval(*e.kids[1]);
  line_ = e.line;
  if (e.name == "==" || e.name == "!=") return Value::boolean(equals(a, b) == (e.name == "=="));
  if (e.name == "in" || e.name == "notin") {
    Args t;
    t.pos.push_back(b);
    return Value::boolean(call_test("in", a, t) == (e.name == "in"));
  }
  if (e.name == "~") return Value::string(str(a) + str(b));
  if (e.name == "<" || e.name == "<=" || e.name == ">" || e.name == ">=") {
    if (a.is_undefined()) fail_undefined(a);
    if (b.is_undefined()) fail_undefined(b);
    const int c = compare(a, b);
    return Value::boolean(e.name == "<" ? c < 0 : e.name == "<=" ? c <= 0 : e.name == ">" ? c > 0 : c >= 0);
  }
  return arith(e.name, a, b, opt_.max_output);
}

// obj.name: a method first, then the key (Jinja's getattr order).
Value Interp::attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (auto m = bound_method(obj, name)) return *m;
  if (obj.is_dict() || obj.kind == Value::Kind::ns)
    if (const Value* v = obj.dict->find(name)) return *v;
  return Value::undefined(std::string("'") + type_name(obj) + " object' has no attribute '" + name + "'");
}

// obj[key]: the item first, then the attribute.
Value Interp::item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if ((obj.is_list() || obj.is_string()) && (key.kind == Value::Kind::integer || key.kind == Value::Kind::boolean)) {
    const List items = obj.is_list() ? List{} : iterate(obj);
    const List& xs = obj.is_list() ? *obj.list : items;
    int64_t k = need_int(key, "index");
    const auto n = static_cast<int64_t>(xs.size());
    if (k < 0) k += n;
    if (k < 0 || k >= n) return Value::undefined(std::string("'") + type_name(obj) + " object' has no element " + str(key));
    return xs[static_cast<size_t>(k)];
  }
  if ((obj.is_dict() || obj.kind == Value::Kind::ns) && key.is_string()) {
    if (const Value* v = obj.dict->find(key.s)) return *v;
  }
  if (key.is_string()) return attr(obj, key.s);
  return Value::undefined(std::string("'") + type_name(obj) + " object' has no element " + repr(key));
}

// obj[start:stop:step] with Python's index adjustment.
Value Interp::slice(const Expr& e) {
  const Value obj = eval(*e.kids[0]);
  if (obj.is_undefined()) fail_undefined(obj);
  if (!obj.is_list() && !obj.is_string()) fail(std::string("'") + type_name(obj) + "' object is not sliceable");
  auto part = [&](size_t k) -> std::optional<int64_t> {
    if (!e.kids[k]) return std::nullopt;
    const Value v = eval(*e.kids[k]);
    if (v.kind == Value::Kind::none) return std::nullopt;
    return need_int(v, "slice index");
  };
  const auto p0 = part(1), p1 = part(2), p2 = part(3);
  const int64_t step = p2.value_or(1);
  if (step == 0) fail("slice step cannot be zero");
  const List xs = iterate(obj);
  const auto n = static_cast<int64_t>(xs.size());
  auto adjust = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t x = *v < 0 ? *v + n : *v;
    if (step > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  const int64_t start = adjust(p0, step > 0 ? 0 : n - 1), stop = adjust(p1, step > 0 ? n : -1);
  List out;
  for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) out.push_back(xs[static_cast<size_t>(k)]);
  if (obj.is_list()) return Value::make_list(std::move(out), obj.tuple);
  std::string s;
  for (const Value& c : out) s += c.s;
  return Value::string(std::move(s));
}

int64_t checked(bool overflow, int64_t v) {
  if (overflow) fail("integer overflow");
  return v;
}

Value repeat(const Value& seq, int64_t times, size_t max_len) {
  const auto n = static_cast<size_t>(std::max<int64_t>(0, times));
  const size_t unit = seq.is_string() ? seq.s.size() : seq.list->size();
  if (unit && n > max_len / unit) fail("a repetition larger than " + std::to_string(max_len) + " bytes/items");
  if (seq.is_string()) {
    std::string out;
    for (size_t k = 0; k < n; ++k) out += seq.s;
    return Value::string(std::move(out));
  }
  List out;
  for (size_t k = 0; k < n; ++k) out.insert(out.end(), seq.list->begin(), seq.list->end());
  return Value::make_list(std::move(out), seq.tuple);
}

Value arith(const std::string& op, const Value& a, const Value& b, size_t max_len) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  const auto bad = [&]() -> Value {
    fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
  };
  if (op == "+" && a.is_string() && b.is_string()) return Value::string(a.s + b.s);
  if (op == "+" && a.is_list() && b.is_list() && a.tuple == b.tuple) {
    List out = *a.list;
    out.insert(out.end(), b.list->begin(), b.list->end());
    return Value::make_list(std::move(out), a.tuple);
  }
  if (op == "*" && (a.is_string() || a.is_list()) && b.is_number() && b.kind != Value::Kind::floating) return repeat(a, need_int(b, "*"), max_len);
  if (op == "*" && (b.is_string() || b.is_list()) && a.is_number() && a.kind != Value::Kind::floating) return repeat(b, need_int(a, "*"), max_len);
  if (!a.is_number() || !b.is_number()) return bad();
  const bool ints = a.kind != Value::Kind::floating && b.kind != Value::Kind::floating;
  if (op == "/") {
    if (b.as_double() == 0) fail("division by zero");
    return Value::floating(a.as_double() / b.as_double());
  }
  if (ints) {
    const int64_t x = need_int(a, op), y = need_int(b, op);
    int64_t r = 0;
    bool overflow = false;  // computed before `r` is read: argument evaluation order is unspecified
    if (op == "+") overflow = __builtin_add_overflow(x, y, &r);
    if (op == "-") overflow = __builtin_sub_overflow(x, y, &r);
    if (op == "*") overflow = __builtin_mul_overflow(x, y, &r);
    if (op == "+" || op == "-" || op == "*") return Value::integer(checked(overflow, r));
    if (op == "//" || op == "%") {
      if (y == 0) fail("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) fail("integer overflow");
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) --q, m += y;  // Python floors
      return Value::integer(op == "//" ? q : m);
    }
    if (op == "**" && y >= 0) {
      int64_t p = 1;
      for (int64_t k = 0; k < y; ++k) {
        const bool overflow = __builtin_mul_overflow(p, x, &p);
        checked(overflow, p);
      }
      return Value::integer(p);
    }
  }
  const double x = a.as_double(), y = b.as_double();
  if (op == "+") return Value::floating(x + y);
  if (op == "-") return Value::floating(x - y);
  if (op == "*") return Value::floating(x * y);
  if (op == "**") return Value::floating(std::pow(x, y));
  if (op == "//" || op == "%") {
    if (y == 0) fail("float division or modulo by zero");
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    return Value::floating(op == "%" ? m : std::floor((x - m) / y + 0.5));
  }
  return bad();
}

}  // namespace

Template::Template(std::string_view source, std::string name) : name_(std::move(name)) {
  auto p = std::make_shared<Program>();
  p->body = parse_template(source, name_);
  program_ = std::move(p);
}

std::string Template::render(const Dict& context, const RenderOptions& options) const {
  Interp in(context, options);
  try {
    return in.run(program_->body);
  } catch (const Error& e) {
    throw InputError(name_ + " line " + std::to_string(in.line()) + ": " + e.message());
  }
}

}  // namespace hps::text::jinja
