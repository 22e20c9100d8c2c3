// Recursive-descent parser for the Jinja subset chat templates use, following Jinja2's own grammar
// (jinja2/parser.py): conditional < or < and < not < comparison < + - < ~ < * / // % < ** < unary <
// primary with postfix (. [] ()) and then filters / tests.
#include <algorithm>

#include "core/error.hpp"
#include "text/jinja_ast.hpp"
#include "text/jinja_lex.hpp"

namespace hps::text::jinja {

namespace {

ExprPtr make(Expr::Kind kind, int line, std::string name = "") {
  auto e = std::make_unique<Expr>();
  e->kind = kind, e->line = line, e->name = std::move(name);
  return e;
}

ExprPtr binary(std::string op, ExprPtr a, ExprPtr b) {
  auto e = make(Expr::Kind::binary, a->line, std::move(op));
  e->kids.push_back(std::move(a));
  e->kids.push_back(std::move(b));
  return e;
}

// The tokens of one tag.
class ExprParser {
 public:
  ExprParser(const std::vector<Token>& t, const std::string& name, int line) : t_(t), name_(name), line_(line) {}

  [[noreturn]] void fail(const std::string& what) const {
    const int line = k_ < t_.size() ? t_[k_].line : t_.empty() ? line_ : t_.back().line;
    const std::string at = k_ < t_.size() ? " (at '" + t_[k_].text + "')" : " (at the end of the tag)";
    throw ConfigError(name_ + " line " + std::to_string(line) + ": " + what + at);
  }
  bool done() const { return k_ >= t_.size(); }
  bool is_op(const char* op) const { return !done() && t_[k_].kind == Token::Kind::op && t_[k_].text == op; }
  bool is_name(const char* n) const { return !done() && t_[k_].kind == Token::Kind::name && t_[k_].text == n; }
  bool skip_op(const char* op) { return is_op(op) ? (++k_, true) : false; }
  bool skip_name(const char* n) { return is_name(n) ? (++k_, true) : false; }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail(std::string("expected '") + op + "'");
  }
  std::string expect_name() {
    if (done() || t_[k_].kind != Token::Kind::name) fail("expected a name");
    return t_[k_++].text;
  }
  void expect_end() {
    if (!done()) fail("unexpected token");
  }
  int line() const { return done() ? (t_.empty() ? line_ : t_.back().line) : t_[k_].line; }

  // `name(args)` after a block set's '|': a filter whose operand is the captured block.
  ExprPtr block_filter() {
    auto f = make(Expr::Kind::filter, line(), expect_name());
    f->kids.push_back(nullptr);
    if (skip_op("(")) call_args(*f);
    return f;
  }

  // An assignment target: a name, or names and parenthesized groups separated by commas.
  ExprPtr pattern() {
    auto first = pattern_item();
    if (!is_op(",")) return first;
    auto t = make(Expr::Kind::list, first->line);
    t->tuple = true;
    t->kids.push_back(std::move(first));
    while (skip_op(",") && !is_name("in") && !is_op("=") && !is_op(")") && !done()) t->kids.push_back(pattern_item());
    return t;
  }
  ExprPtr pattern_item() {
    const Nest n(*this);
    if (skip_op("(")) {
      auto p = pattern();
      expect_op(")");
      return p;
    }
    return make(Expr::Kind::name, line(), expect_name());
  }

  ExprPtr expression(bool with_cond = true) {
    const Nest n(*this);
    return with_cond ? condexpr() : or_expr();
  }

  // a, b, … as a tuple (a lone item without a trailing comma is itself).
  ExprPtr tuple(bool with_cond = true) {
    auto first = expression(with_cond);
    if (!is_op(",")) return first;
    auto t = make(Expr::Kind::list, first->line);
    t->tuple = true;
    t->kids.push_back(std::move(first));
    while (skip_op(",") && !done() && !is_name("if") && !is_op(")") && !is_op("]") && !is_op("}") && !is_op("="))
      t->kids.push_back(expression(with_cond));
    return t;
  }

  // Call arguments after '(' up to ')'.
  void call_args(Expr& e) {
    for (bool first = true; !skip_op(")"); first = false) {
      if (!first) {
        expect_op(",");
        if (skip_op(")")) return;
      }
      if (!done() && t_[k_].kind == Token::Kind::name && k_ + 1 < t_.size() && t_[k_ + 1].text == "=" &&
          t_[k_ + 1].kind == Token::Kind::op) {
        std::string key = t_[k_].text;
        k_ += 2;
        e.kwargs.emplace_back(std::move(key), expression());
      } else {
        if (!e.kwargs.empty()) fail("positional argument after a keyword argument");
        e.kids.push_back(expression());
      }
    }
  }

 private:
  // Nesting beyond kMaxNesting is an error, not a stack overflow.
  static constexpr int kMaxNesting = 200;
  struct Nest {
    ExprParser& p;
    explicit Nest(ExprParser& parser) : p(parser) {
      if (++p.depth_ > kMaxNesting) p.fail("expressions nested deeper than " + std::to_string(kMaxNesting));
    }
    ~Nest() { --p.depth_; }
  };

  ExprPtr condexpr() {
    auto a = or_expr();
    while (skip_name("if")) {
      auto c = make(Expr::Kind::cond, a->line);
      auto cond = or_expr();
      ExprPtr other = skip_name("else") ? condexpr() : nullptr;
      c->kids.push_back(std::move(a));
      c->kids.push_back(std::move(cond));
      c->kids.push_back(std::move(other));
      a = std::move(c);
    }
    return a;
  }
  ExprPtr or_expr() {
    auto a = and_expr();
    while (skip_name("or")) a = binary("or", std::move(a), and_expr());
    return a;
  }
  ExprPtr and_expr() {
    auto a = not_expr();
    while (skip_name("and")) a = binary("and", std::move(a), not_expr());
    return a;
  }
  ExprPtr not_expr() {
    if (!skip_name("not")) return compare();
    const Nest n(*this);
    auto e = make(Expr::Kind::unary, line(), "not");
    e->kids.push_back(not_expr());
    return e;
  }
  // a < b < c is (a < b) and (b < c); templates have no side effects, so b may be evaluated twice.
  ExprPtr compare() {
    auto a = math1();
    ExprPtr chain;
    const Expr* last = a.get();
    for (;;) {
      std::string op;
      for (const char* o : {"==", "!=", "<", "<=", ">", ">="})
        if (is_op(o)) op = o;
      if (!op.empty()) ++k_;
      else if (skip_name("in")) op = "in";
      else if (is_name("not") && k_ + 1 < t_.size() && t_[k_ + 1].text == "in") k_ += 2, op = "notin";
      else break;
      auto b = math1();
      const Expr* next = b.get();
      if (!chain) {
        chain = binary(op, std::move(a), std::move(b));
      } else {
        auto again = reparse_copy(*last);
        chain = binary("and", std::move(chain), binary(op, std::move(again), std::move(b)));
      }
      last = next;
    }
    return chain ? std::move(chain) : std::move(a);
  }
  static ExprPtr reparse_copy(const Expr& e) {
    auto c = std::make_unique<Expr>();
    c->kind = e.kind, c->line = e.line, c->value = e.value, c->name = e.name, c->tuple = e.tuple, c->negated = e.negated;
    for (const auto& k : e.kids) c->kids.push_back(k ? reparse_copy(*k) : nullptr);
    for (const auto& [n, k] : e.kwargs) c->kwargs.emplace_back(n, reparse_copy(*k));
    return c;
  }
  ExprPtr math1() {
    auto a = concat();
    for (;;) {
      if (skip_op("+")) a = binary("+", std::move(a), concat());
      else if (skip_op("-")) a = binary("-", std::move(a), concat());
      else return a;
    }
  }
  ExprPtr concat() {
    auto a = math2();
    while (skip_op("~")) a = binary("~", std::move(a), math2());
    return a;
  }
  ExprPtr math2() {
    auto a = pow();
    for (;;) {
      std::string op;
      for (const char* o : {"*", "/", "//", "%"})
        if (is_op(o)) op = o;
      if (op.empty()) return a;
      ++k_;
      a = binary(op, std::move(a), pow());
    }
  }
  ExprPtr pow() {
    auto a = unary(true);
    while (skip_op("**")) a = binary("**", std::move(a), unary(true));
    return a;
  }
  ExprPtr unary(bool with_filter) {
    const Nest n(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = make(Expr::Kind::unary, line(), t_[k_++].text);
      e->kids.push_back(unary(false));
    } else {
      e = postfix(primary());
    }
    return with_filter ? filters(std::move(e)) : std::move(e);
  }
  ExprPtr primary() {
    if (done()) fail("expected an expression");
    const Token& t = t_[k_];
    if (t.kind == Token::Kind::name) {
      ++k_;
      auto e = make(Expr::Kind::literal, t.line);
      if (t.text == "true" || t.text == "True") e->value = Value::boolean(true);
      else if (t.text == "false" || t.text == "False") e->value = Value::boolean(false);
      else if (t.text == "none" || t.text == "None") e->value = Value::none();
      else e->kind = Expr::Kind::name, e->name = t.text;
      return e;
    }
    if (t.kind == Token::Kind::string) {
      std::string s;
      while (!done() && t_[k_].kind == Token::Kind::string) s += t_[k_++].text;  // adjacent literals join
      auto e = make(Expr::Kind::literal, t.line);
      e->value = Value::string(std::move(s));
      return e;
    }
    if (t.kind == Token::Kind::integer || t.kind == Token::Kind::floating) {
      ++k_;
      auto e = make(Expr::Kind::literal, t.line);
      e->value = t.kind == Token::Kind::integer ? Value::integer(t.i) : Value::floating(t.f);
      return e;
    }
    if (skip_op("(")) {
      if (skip_op(")")) {
        auto e = make(Expr::Kind::list, t.line);
        e->tuple = true;
        return e;
      }
      auto e = tuple();
      expect_op(")");
      return e;
    }
    if (skip_op("[")) return literal_items(Expr::Kind::list, "]", t.line);
    if (skip_op("{")) return literal_items(Expr::Kind::dict, "}", t.line);
    fail("expected an expression");
  }
  // [a, b, …] or {k: v, …} after the opening bracket; a trailing comma is allowed.
  ExprPtr literal_items(Expr::Kind kind, const char* close, int line) {
    auto e = make(kind, line);
    while (!skip_op(close)) {
      if (!e->kids.empty()) {
        expect_op(",");
        if (skip_op(close)) break;
      }
      e->kids.push_back(expression());
      if (kind == Expr::Kind::dict) {
        expect_op(":");
        e->kids.push_back(expression());
      }
    }
    return e;
  }
  ExprPtr postfix(ExprPtr e) {
    for (;;) {
      if (skip_op(".")) {
        if (!done() && t_[k_].kind == Token::Kind::integer) {  // x.0 is x[0]
          auto idx = make(Expr::Kind::literal, line());
          idx->value = Value::integer(t_[k_++].i);
          auto it = make(Expr::Kind::item, e->line);
          it->kids.push_back(std::move(e));
          it->kids.push_back(std::move(idx));
          e = std::move(it);
        } else {
          auto a = make(Expr::Kind::attr, e->line, expect_name());
          a->kids.push_back(std::move(e));
          e = std::move(a);
        }
      } else if (skip_op("[")) {
        e = subscript(std::move(e));
      } else if (skip_op("(")) {
        auto c = make(Expr::Kind::call, e->line);
        c->kids.push_back(std::move(e));
        call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
  ExprPtr subscript(ExprPtr e) {
    ExprPtr parts[3];
    int colons = 0;
    for (;;) {
      if (skip_op("]")) break;
      if (skip_op(":")) {
        if (++colons > 2) fail("too many ':' in a slice");
        continue;
      }
      if (parts[colons]) fail("expected ':' or ']'");
      parts[colons] = expression();
    }
    if (colons == 0) {
      if (!parts[0]) fail("empty subscript");
      auto it = make(Expr::Kind::item, e->line);
      it->kids.push_back(std::move(e));
      it->kids.push_back(std::move(parts[0]));
      return it;
    }
    auto s = make(Expr::Kind::slice, e->line);
    s->kids.push_back(std::move(e));
    for (auto& p : parts) s->kids.push_back(std::move(p));
    return s;
  }
  ExprPtr filters(ExprPtr e) {
    for (;;) {
      if (skip_op("|")) {
        auto f = make(Expr::Kind::filter, e->line, expect_name());
        f->kids.push_back(std::move(e));
        if (skip_op("(")) call_args(*f);
        e = std::move(f);
      } else if (skip_name("is")) {
        const bool negated = skip_name("not");
        auto t = make(Expr::Kind::test, e->line, expect_name());
        t->negated = negated;
        t->kids.push_back(std::move(e));
        if (skip_op("(")) {
          call_args(*t);
        } else if (!done() && !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if") &&
                   (t_[k_].kind != Token::Kind::op || is_op("(") || is_op("[") || is_op("{"))) {
          // `is divisibleby 3`, `is equalto 'x'`: one argument without parentheses
          t->kids.push_back(postfix(primary()));
        }
        e = std::move(t);
      } else if (skip_op("(")) {
        auto c = make(Expr::Kind::call, e->line);
        c->kids.push_back(std::move(e));
        call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  const std::vector<Token>& t_;
  const std::string& name_;
  int line_;
  size_t k_ = 0;
  int depth_ = 0;
};

class Parser {
 public:
  Parser(std::vector<Piece> pieces, const std::string& name) : p_(std::move(pieces)), name_(name) {}

  Body top() {
    std::string end;
    Body b = body({}, &end);
    return b;
  }

 private:
  [[noreturn]] void fail(const std::string& what, int line) const {
    throw ConfigError(name_ + " line " + std::to_string(line) + ": " + what);
  }

  static std::string keyword(const Piece& p) {
    return !p.tokens.empty() && p.tokens[0].kind == Token::Kind::name ? p.tokens[0].text : "";
  }

  // Statements up to a block tag named in `ends` (consumed; its name in *end), or to the end of the source.
  Body body(std::initializer_list<const char*> ends, std::string* end, int open_line = 0, const char* opener = "") {
    Body out;
    while (i_ < p_.size()) {
      const Piece& p = p_[i_];
      if (p.kind == Piece::Kind::text) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::text, n->line = p.line, n->text = p.text;
        out.push_back(std::move(n));
        ++i_;
        continue;
      }
      if (p.kind == Piece::Kind::output) {
        ExprParser e(p.tokens, name_, p.line);
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::output, n->line = p.line, n->expr = e.tuple();
        e.expect_end();
        out.push_back(std::move(n));
        ++i_;
        continue;
      }
      const std::string kw = keyword(p);
      if (std::any_of(ends.begin(), ends.end(), [&](const char* e) { return kw == e; })) {
        *end = kw;
        return out;
      }
      out.push_back(statement(p, kw));
    }
    if (ends.size()) fail(std::string("{% ") + opener + " %} is never closed (expected {% " + *ends.begin() + " %})", open_line);
    return out;
  }

  NodePtr statement(const Piece& p, const std::string& kw) {
    if (++depth_ > kMaxBlocks) fail("blocks nested deeper than " + std::to_string(kMaxBlocks), p.line);
    struct Leave {
      int& d;
      ~Leave() { --d; }
    } leave{depth_};
    ExprParser e(p.tokens, name_, p.line);
    auto n = std::make_unique<Node>();
    n->line = p.line;
    if (kw.empty()) fail("expected a statement name after {%", p.line);
    e.expect_name();
    ++i_;
    if (kw == "if") return if_(std::move(n), e);
    if (kw == "for") return for_(std::move(n), e);
    if (kw == "set") return set(std::move(n), e);
    if (kw == "macro") return macro(std::move(n), e);
    if (kw == "break" || kw == "continue") {
      e.expect_end();
      n->kind = kw == "break" ? Node::Kind::break_ : Node::Kind::continue_;
      return n;
    }
    if (kw == "generation") {
      e.expect_end();
      n->kind = Node::Kind::generation;
      std::string end;
      n->body = body({"endgeneration"}, &end, p.line, "generation");
      end_tag();
      return n;
    }
    fail("unsupported or misplaced tag {% " + kw + " %}", p.line);
  }

  void end_tag() {  // the end tag body() stopped at: nothing may follow its name
    ExprParser e(p_[i_].tokens, name_, p_[i_].line);
    e.expect_name();
    e.expect_end();
    ++i_;
  }

  NodePtr if_(NodePtr n, ExprParser& e) {
    n->kind = Node::Kind::if_;
    ExprPtr cond = e.tuple();
    e.expect_end();
    for (;;) {
      std::string end;
      Body b = body({"endif", "elif", "else"}, &end, n->line, "if");
      n->branches.emplace_back(std::move(cond), std::move(b));
      const Piece& t = p_[i_];
      ExprParser te(t.tokens, name_, t.line);
      te.expect_name();
      ++i_;
      if (end == "endif") {
        te.expect_end();
        return n;
      }
      if (end == "else") {
        te.expect_end();
        Body eb = body({"endif"}, &end, n->line, "if");
        n->branches.emplace_back(nullptr, std::move(eb));
        end_tag();
        return n;
      }
      cond = te.tuple();
      te.expect_end();
    }
  }

  NodePtr for_(NodePtr n, ExprParser& e) {
    n->kind = Node::Kind::for_;
    n->pattern = e.pattern();
    if (!e.skip_name("in")) e.fail("expected 'in' in a for loop");
    n->expr = e.tuple(false);
    if (e.skip_name("if")) n->filter = e.expression();
    if (e.skip_name("recursive")) e.fail("recursive loops are not supported");
    e.expect_end();
    std::string end;
    n->body = body({"endfor", "else"}, &end, n->line, "for");
    if (end == "else") {
      end_tag();
      n->else_body = body({"endfor"}, &end, n->line, "for");
    }
    end_tag();
    return n;
  }

  NodePtr set(NodePtr n, ExprParser& e) {
    n->pattern = e.pattern();
    if (n->pattern->kind == Expr::Kind::name) n->target = n->pattern->name;
    if (n->pattern->kind == Expr::Kind::name && e.skip_op(".")) n->attr = e.expect_name();
    if (e.skip_op("=")) {
      n->kind = Node::Kind::set;
      n->expr = e.tuple();
      e.expect_end();
      return n;
    }
    if (!n->attr.empty() || n->target.empty()) e.fail("a block set assigns one name");
    while (e.skip_op("|")) n->filters.push_back(e.block_filter());
    e.expect_end();
    n->kind = Node::Kind::set_block;
    std::string end;
    n->body = body({"endset"}, &end, n->line, "set");
    end_tag();
    return n;
  }

  NodePtr macro(NodePtr n, ExprParser& e) {
    n->kind = Node::Kind::macro;
    n->target = e.expect_name();
    e.expect_op("(");
    while (!e.skip_op(")")) {
      if (!n->params.empty()) e.expect_op(",");
      if (e.skip_op(")")) break;
      std::string param = e.expect_name();
      ExprPtr def = e.skip_op("=") ? e.expression() : nullptr;
      n->params.emplace_back(std::move(param), std::move(def));
    }
    e.expect_end();
    std::string end;
    n->body = body({"endmacro"}, &end, n->line, "macro");
    end_tag();
    return n;
  }

  static constexpr int kMaxBlocks = 200;
  std::vector<Piece> p_;
  const std::string& name_;
  size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

Body parse_template(std::string_view source, const std::string& name) {
  return Parser(lex_template(source, name), name).top();
}

}  // namespace hps::text::jinja
