// Recursive descent over the grammar in README.md, one token of lookahead.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <limits>

#include "ast.h"
#include "lexer.h"
#include "sql.h"

namespace baetyl::sql {
namespace {

std::string describe(const Token& t) {
  switch (t.kind) {
    case TokenKind::kEnd:
      return "the end of the query";
    case TokenKind::kString:
      return "the string '" + t.text + "'";
    case TokenKind::kIdentifier:
      return t.quoted ? "`" + t.text + "`" : "'" + t.text + "'";
    default:
      return "'" + t.text + "'";
  }
}

std::string lower_ascii(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text), lexer_(text) { advance(); }

  std::unique_ptr<QueryPlan> parse_query() {
    auto plan = std::make_unique<QueryPlan>();
    plan->text = std::string(text_);
    if (!is_keyword("select")) fail_here("expected 'select' at the start of the query");
    advance();
    while (true) {
      plan->items.push_back(parse_item());
      if (!is_symbol(",")) break;
      advance();
    }
    if (is_keyword("from")) {
      if (!lexer_.skip_source()) {
        fail_at(text_, lexer_.position(),
                "expected a source (anything, it is ignored) after 'from'");
      }
      advance();
    }
    if (is_keyword("where")) {
      advance();
      plan->where = parse_expr();
    }
    if (is_symbol(";")) advance();
    if (current_.kind != TokenKind::kEnd) {
      fail_here(plan->where ? "expected an operator or the end of the query after the condition"
                            : "expected ',', 'from', 'where' or the end of the query");
    }
    return plan;
  }

 private:
  void advance() {
    previous_end_ = current_.offset + current_.length;
    previous_ = std::move(current_);
    current_ = lexer_.next();
  }
  bool is_keyword(std::string_view k) const {
    return current_.kind == TokenKind::kKeyword && current_.text == k;
  }
  bool is_symbol(std::string_view s) const {
    return current_.kind == TokenKind::kSymbol && current_.text == s;
  }
  [[noreturn]] void fail_here(const std::string& what) {
    fail_at(text_, current_.offset, what + ", found " + describe(current_));
  }
  void expect_symbol(std::string_view s, const std::string& what) {
    if (!is_symbol(s)) fail_here(what);
    advance();
  }

  SelectItem parse_item() {
    SelectItem item;
    if (is_symbol("*")) {
      advance();
      item.star = true;
      return item;
    }
    std::size_t start = current_.offset;
    if (!starts_expression()) {
      fail_here("expected an expression or '*' after '" + previous_.text + "'");
    }
    item.expr = parse_expr();
    std::size_t end = previous_end_;
    if (is_keyword("as")) {
      advance();
      if (current_.kind != TokenKind::kIdentifier && current_.kind != TokenKind::kString) {
        fail_here("expected a name after 'as'");
      }
      item.name = current_.text;
      advance();
    } else if (item.expr->kind == Expr::Kind::kField) {
      // The last member name: `a.b.c` and `a.b.c[0]` give "c".
      for (const auto& step : item.expr->path) {
        if (!step.is_index) item.name = step.key;
      }
    } else {
      item.name = std::string(text_.substr(start, end - start));
    }
    return item;
  }

  bool starts_expression() const {
    switch (current_.kind) {
      case TokenKind::kIdentifier:
      case TokenKind::kNumber:
      case TokenKind::kString:
        return true;
      case TokenKind::kKeyword:
        return current_.text == "not" || current_.text == "null" || current_.text == "true" ||
               current_.text == "false";
      case TokenKind::kSymbol:
        return current_.text == "(" || current_.text == "-" || current_.text == "+";
      default:
        return false;
    }
  }

  // An operand after an operator token (already consumed).
  void need_operand() {
    if (!starts_expression()) {
      fail_here("expected an expression after '" + previous_.text + "'");
    }
  }

  std::unique_ptr<Expr> parse_expr() {
    need_operand();
    return parse_or();
  }

  // A node for the operator at `offset` over its operands (more may be added, then finish()).
  std::unique_ptr<Expr> make(Expr::Kind kind, std::size_t offset, std::unique_ptr<Expr> a,
                             std::unique_ptr<Expr> b = nullptr) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->args.push_back(std::move(a));
    if (b) e->args.push_back(std::move(b));
    finish(*e, offset);
    return e;
  }

  // Sets the height of `e` from its operands, refusing a tree higher than kMaxQueryDepth.
  void finish(Expr& e, std::size_t offset) {
    std::size_t height = 0;
    for (const auto& arg : e.args) height = std::max(height, arg->height);
    e.height = height + 1;
    if (e.height > kMaxQueryDepth) fail_at(text_, offset, too_deep());
  }

  static std::string too_deep() {
    return "expression too deep (more than " + std::to_string(kMaxQueryDepth) +
           " levels of operators, parentheses and function calls)";
  }

  // Counts one level of recursion of the parser for as long as it lives.
  class Descent {
   public:
    explicit Descent(Parser& parser) : parser_(parser) {
      if (++parser_.depth_ > kMaxQueryDepth) parser_.fail_at_current(too_deep());
    }
    ~Descent() { --parser_.depth_; }
    Descent(const Descent&) = delete;
    Descent& operator=(const Descent&) = delete;

   private:
    Parser& parser_;
  };

  [[noreturn]] void fail_at_current(const std::string& what) {
    fail_at(text_, current_.offset, what);
  }

  std::unique_ptr<Expr> parse_or() {
    Descent descent(*this);
    auto left = parse_and();
    while (is_keyword("or")) {
      const std::size_t at = current_.offset;
      advance();
      need_operand();
      left = make(Expr::Kind::kOr, at, std::move(left), parse_and());
    }
    return left;
  }

  std::unique_ptr<Expr> parse_and() {
    auto left = parse_not();
    while (is_keyword("and")) {
      const std::size_t at = current_.offset;
      advance();
      need_operand();
      left = make(Expr::Kind::kAnd, at, std::move(left), parse_not());
    }
    return left;
  }

  std::unique_ptr<Expr> parse_not() {
    if (is_keyword("not")) {
      Descent descent(*this);
      const std::size_t at = current_.offset;
      advance();
      need_operand();
      return make(Expr::Kind::kNot, at, parse_not());
    }
    return parse_predicate();
  }

  std::unique_ptr<Expr> parse_predicate() {
    auto left = parse_concat();
    while (true) {
      if (current_.kind == TokenKind::kSymbol) {
        static const std::pair<std::string_view, Op> kComparisons[] = {
            {"=", Op::kEq},  {"!=", Op::kNe}, {"<>", Op::kNe}, {"<", Op::kLt},
            {"<=", Op::kLe}, {">", Op::kGt},  {">=", Op::kGe}};
        bool matched = false;
        for (auto [symbol, op] : kComparisons) {
          if (current_.text == symbol) {
            const std::size_t at = current_.offset;
            advance();
            need_operand();
            left = make(Expr::Kind::kCompare, at, std::move(left), parse_concat());
            left->op = op;
            matched = true;
            break;
          }
        }
        if (matched) continue;
        return left;
      }
      if (is_keyword("is")) {
        auto e = make(Expr::Kind::kIsNull, current_.offset, std::move(left));
        advance();
        if (is_keyword("not")) {
          advance();
          e->negated = true;
        }
        if (!is_keyword("null")) {
          fail_here(std::string("expected 'null' after '") + (e->negated ? "is not" : "is") + "'");
        }
        advance();
        left = std::move(e);
        continue;
      }
      bool negated = false;
      const std::size_t at = current_.offset;
      if (is_keyword("not")) {
        advance();
        negated = true;
        if (!is_keyword("in") && !is_keyword("like") && !is_keyword("between")) {
          fail_here("expected 'in', 'like' or 'between' after 'not'");
        }
      }
      if (is_keyword("in")) {
        advance();
        auto e = make(Expr::Kind::kIn, at, std::move(left));
        e->negated = negated;
        expect_symbol("(", "expected '(' after 'in'");
        std::size_t open = previous_.offset;
        while (true) {
          need_operand();
          e->args.push_back(parse_or());
          if (!is_symbol(",")) break;
          advance();
        }
        if (!is_symbol(")")) {
          fail_here("expected ',' or ')' to close the list opened at " + position(open));
        }
        advance();
        finish(*e, at);
        left = std::move(e);
      } else if (is_keyword("like")) {
        advance();
        need_operand();
        left = make(Expr::Kind::kLike, at, std::move(left), parse_concat());
        left->negated = negated;
      } else if (is_keyword("between")) {
        advance();
        need_operand();
        auto e = make(Expr::Kind::kBetween, at, std::move(left), parse_concat());
        if (!is_keyword("and")) fail_here("expected 'and' between the bounds of 'between'");
        advance();
        need_operand();
        e->args.push_back(parse_concat());
        finish(*e, at);
        e->negated = negated;
        left = std::move(e);
      } else {
        return left;
      }
    }
  }

  std::unique_ptr<Expr> parse_concat() {
    auto left = parse_additive();
    while (is_symbol("||")) {
      const std::size_t at = current_.offset;
      advance();
      need_operand();
      left = make(Expr::Kind::kArithmetic, at, std::move(left), parse_additive());
      left->op = Op::kConcat;
    }
    return left;
  }

  std::unique_ptr<Expr> parse_additive() {
    auto left = parse_multiplicative();
    while (is_symbol("+") || is_symbol("-")) {
      Op op = current_.text == "+" ? Op::kAdd : Op::kSub;
      const std::size_t at = current_.offset;
      advance();
      need_operand();
      left = make(Expr::Kind::kArithmetic, at, std::move(left), parse_multiplicative());
      left->op = op;
    }
    return left;
  }

  std::unique_ptr<Expr> parse_multiplicative() {
    auto left = parse_unary();
    while (is_symbol("*") || is_symbol("/") || is_symbol("%")) {
      Op op = current_.text == "*" ? Op::kMul : current_.text == "/" ? Op::kDiv : Op::kMod;
      const std::size_t at = current_.offset;
      advance();
      need_operand();
      left = make(Expr::Kind::kArithmetic, at, std::move(left), parse_unary());
      left->op = op;
    }
    return left;
  }

  std::unique_ptr<Expr> parse_unary() {
    if (is_symbol("-") || is_symbol("+")) {
      Descent descent(*this);
      bool minus = current_.text == "-";
      const std::size_t at = current_.offset;
      advance();
      need_operand();
      auto operand = parse_unary();
      if (!minus) return operand;
      if (operand->kind == Expr::Kind::kLiteral && operand->literal.is_number()) {
        const Value& v = operand->literal;
        if (v.type() == Value::Type::kInt &&
            v.integer() != std::numeric_limits<std::int64_t>::min()) {
          operand->literal = Value::of_int(-v.integer());
        } else {
          operand->literal = Value::of_double(-v.number());
        }
        return operand;
      }
      return make(Expr::Kind::kNegate, at, std::move(operand));
    }
    return parse_primary();
  }

  std::unique_ptr<Expr> parse_primary() {
    auto e = std::make_unique<Expr>();
    switch (current_.kind) {
      case TokenKind::kNumber:
        e->literal = number_value(current_);
        advance();
        return e;
      case TokenKind::kString:
        e->literal_string = current_.text;
        advance();
        e->literal = Value::of_string_ref(&e->literal_string);
        return e;
      case TokenKind::kKeyword:
        if (current_.text == "true" || current_.text == "false") {
          e->literal = Value::of_bool(current_.text == "true");
          advance();
          return e;
        }
        if (current_.text == "null") {
          advance();
          return e;
        }
        break;
      case TokenKind::kSymbol:
        if (current_.text == "(") {
          std::size_t open = current_.offset;
          advance();
          auto inner = parse_expr();
          if (!is_symbol(")")) fail_here("expected ')' to close the '(' at " + position(open));
          advance();
          return inner;
        }
        break;
      case TokenKind::kIdentifier:
        if (!current_.quoted && lexer_peek_is_call()) return parse_call();
        return parse_path();
      default:
        break;
    }
    fail_here("expected an expression after '" + previous_.text + "'");
  }

  // A name followed directly by '(' is a function call.
  bool lexer_peek_is_call() const {
    std::size_t i = current_.offset + current_.length;
    while (i < text_.size() &&
           (text_[i] == ' ' || text_[i] == '\t' || text_[i] == '\n' || text_[i] == '\r')) {
      ++i;
    }
    return i < text_.size() && text_[i] == '(';
  }

  std::unique_ptr<Expr> parse_call() {
    auto e = std::make_unique<Expr>();
    e->kind = Expr::Kind::kCall;
    std::string name = lower_ascii(current_.text);
    std::size_t name_offset = current_.offset;
    e->function = find_builtin(name);
    if (!e->function) fail_at(text_, name_offset, "unknown function '" + current_.text + "'");
    advance();
    std::size_t open = current_.offset;
    advance();  // '('
    if (!is_symbol(")")) {
      while (true) {
        need_operand();
        e->args.push_back(parse_or());
        if (!is_symbol(",")) break;
        advance();
      }
      if (!is_symbol(")")) {
        fail_here("expected ',' or ')' to close the arguments opened at " + position(open));
      }
    }
    advance();
    finish(*e, name_offset);
    const Builtin& f = *e->function;
    std::size_t n = e->args.size();
    if (n < f.min_args || n > f.max_args) {
      std::string expected;
      if (f.min_args == f.max_args) {
        expected = std::to_string(f.min_args);
      } else if (f.max_args == SIZE_MAX) {
        expected = "at least " + std::to_string(f.min_args);
      } else {
        expected = std::to_string(f.min_args) + " to " + std::to_string(f.max_args);
      }
      std::size_t last = f.max_args == SIZE_MAX ? f.min_args : f.max_args;
      fail_at(text_, name_offset,
              "function '" + name + "' takes " + expected + " argument" + (last == 1 ? "" : "s") +
                  ", got " + std::to_string(n));
    }
    return e;
  }

  std::unique_ptr<Expr> parse_path() {
    auto e = std::make_unique<Expr>();
    e->kind = Expr::Kind::kField;
    e->path.push_back(PathStep{current_.text});
    advance();
    while (true) {
      if (is_symbol(".")) {
        advance();
        if (current_.kind != TokenKind::kIdentifier && current_.kind != TokenKind::kKeyword) {
          fail_here("expected a field name after '.'");
        }
        e->path.push_back(PathStep{current_.kind == TokenKind::kKeyword
                                       ? std::string(text_.substr(current_.offset, current_.length))
                                       : current_.text});
        advance();
      } else if (is_symbol("[")) {
        advance();
        if (current_.kind != TokenKind::kNumber ||
            current_.text.find_first_not_of("0123456789") != std::string::npos) {
          fail_here("expected an array index (an integer from 0) after '['");
        }
        PathStep step;
        step.is_index = true;
        auto [ptr, ec] = std::from_chars(current_.text.data(),
                                         current_.text.data() + current_.text.size(), step.index);
        if (ec != std::errc()) fail_here("array index out of range");
        advance();
        expect_symbol("]", "expected ']' after the array index");
        e->path.push_back(std::move(step));
      } else {
        return e;
      }
    }
  }

  Value number_value(const Token& t) {
    if (t.text.find_first_not_of("0123456789") == std::string::npos) {
      std::int64_t i = 0;
      auto [ptr, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), i);
      if (ec == std::errc()) return Value::of_int(i);
    }
    return Value::of_double(std::strtod(t.text.c_str(), nullptr));
  }

  std::string position(std::size_t offset) {
    try {
      fail_at(text_, offset, "");
    } catch (const SqlError& e) {
      return std::to_string(e.line()) + ":" + std::to_string(e.column());
    }
  }

  std::string_view text_;
  Lexer lexer_;
  Token current_;
  Token previous_;
  std::size_t previous_end_ = 0;
  std::size_t depth_ = 0;  // of the recursion, see Descent
};

std::string format_error(const std::string& message, std::size_t line, std::size_t column) {
  return "sql: " + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

}  // namespace

SqlError::SqlError(std::string message, std::size_t offset, std::size_t line, std::size_t column)
    : std::runtime_error(format_error(message, line, column)),
      message_(std::move(message)),
      offset_(offset),
      line_(line),
      column_(column) {}

Query Query::parse(std::string_view text) { return Query(Parser(text).parse_query()); }

}  // namespace baetyl::sql
