#include <cmath>
#include <limits>

#include "ast.h"

namespace baetyl::sql {
namespace {

using Type = Value::Type;

bool equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.type() == Type::kInt && b.type() == Type::kInt) return a.integer() == b.integer();
    return a.number() == b.number();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Type::kBool:
      return a.boolean() == b.boolean();
    case Type::kString:
      return a.text() == b.text();
    case Type::kJson:
      return a.json() == b.json();
    default:
      return false;
  }
}

// Two-valued: anything compared with NULL is false, values of different types are only unequal.
bool compare(Op op, const Value& a, const Value& b) {
  if (a.is_null() || b.is_null()) return false;
  if (op == Op::kEq) return equal(a, b);
  if (op == Op::kNe) return !equal(a, b);
  int order = 0;
  if (a.is_number() && b.is_number()) {
    if (a.type() == Type::kInt && b.type() == Type::kInt) {
      order = a.integer() < b.integer() ? -1 : a.integer() > b.integer() ? 1 : 0;
    } else {
      double x = a.number();
      double y = b.number();
      if (std::isnan(x) || std::isnan(y)) return false;
      order = x < y ? -1 : x > y ? 1 : 0;
    }
  } else if (a.type() == Type::kString && b.type() == Type::kString) {
    int c = a.text().compare(b.text());
    order = c < 0 ? -1 : c > 0 ? 1 : 0;
  } else {
    return false;
  }
  switch (op) {
    case Op::kLt:
      return order < 0;
    case Op::kLe:
      return order <= 0;
    case Op::kGt:
      return order > 0;
    case Op::kGe:
      return order >= 0;
    default:
      return false;
  }
}

Value number_result(double d) { return Value::of_double(d); }

Value arithmetic(Op op, const Value& a, const Value& b) {
  if (op == Op::kConcat) {
    if (a.is_null() || b.is_null()) return {};
    return Value::of_string(a.to_text() + b.to_text());
  }
  if (!a.is_number() || !b.is_number()) return {};
  if (a.type() == Type::kInt && b.type() == Type::kInt) {
    std::int64_t x = a.integer();
    std::int64_t y = b.integer();
    std::int64_t r = 0;
    switch (op) {
      case Op::kAdd:
        if (!__builtin_add_overflow(x, y, &r)) return Value::of_int(r);
        return number_result(static_cast<double>(x) + static_cast<double>(y));
      case Op::kSub:
        if (!__builtin_sub_overflow(x, y, &r)) return Value::of_int(r);
        return number_result(static_cast<double>(x) - static_cast<double>(y));
      case Op::kMul:
        if (!__builtin_mul_overflow(x, y, &r)) return Value::of_int(r);
        return number_result(static_cast<double>(x) * static_cast<double>(y));
      case Op::kDiv:
        if (y == 0) return {};
        if (y == -1 && x == std::numeric_limits<std::int64_t>::min()) {
          return number_result(-static_cast<double>(x));
        }
        if (x % y == 0) return Value::of_int(x / y);
        return number_result(static_cast<double>(x) / static_cast<double>(y));
      case Op::kMod:
        if (y == 0) return {};
        if (y == -1) return Value::of_int(0);
        return Value::of_int(x % y);
      default:
        return {};
    }
  }
  double x = a.number();
  double y = b.number();
  switch (op) {
    case Op::kAdd:
      return number_result(x + y);
    case Op::kSub:
      return number_result(x - y);
    case Op::kMul:
      return number_result(x * y);
    case Op::kDiv:
      return y == 0 ? Value() : number_result(x / y);
    case Op::kMod:
      return y == 0 ? Value() : number_result(std::fmod(x, y));
    default:
      return {};
  }
}

}  // namespace

Value Value::of_json(const Json* j) {
  if (j == nullptr) return {};
  switch (j->type()) {
    case Json::value_t::boolean:
      return of_bool(j->get<bool>());
    case Json::value_t::number_integer:
      return of_int(j->get<std::int64_t>());
    case Json::value_t::number_unsigned: {
      auto u = j->get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return of_int(static_cast<std::int64_t>(u));
      }
      return of_double(static_cast<double>(u));
    }
    case Json::value_t::number_float:
      return of_double(j->get<double>());
    case Json::value_t::string:
      return of_string_ref(j->get_ptr<const std::string*>());
    case Json::value_t::object:
    case Json::value_t::array: {
      Value v;
      v.type_ = Type::kJson;
      v.json_ = j;
      return v;
    }
    default:
      return {};
  }
}

bool Value::truthy() const {
  switch (type_) {
    case Type::kBool:
      return b_;
    case Type::kInt:
      return i_ != 0;
    case Type::kDouble:
      return d_ != 0 && !std::isnan(d_);
    case Type::kString:
      return !text().empty();
    case Type::kJson:
      return !json_->empty();
    default:
      return false;
  }
}

Json Value::to_json() const {
  switch (type_) {
    case Type::kBool:
      return b_;
    case Type::kInt:
      return i_;
    case Type::kDouble:
      return std::isfinite(d_) ? Json(d_) : Json();
    case Type::kString:
      return std::string(text());
    case Type::kJson:
      return *json_;
    default:
      return nullptr;
  }
}

std::string Value::to_text() const {
  if (type_ == Type::kString) return std::string(text());
  return to_json().dump(-1, ' ', false, Json::error_handler_t::replace);
}

const Json* resolve(const std::vector<PathStep>& path, const Json& payload) {
  const Json* current = &payload;
  for (const auto& step : path) {
    if (step.is_index) {
      if (!current->is_array() || step.index >= current->size()) return nullptr;
      current = &(*current)[step.index];
    } else {
      if (!current->is_object()) return nullptr;
      auto it = current->find(step.key);
      if (it == current->end()) return nullptr;
      current = &*it;
    }
  }
  return current;
}

namespace {

std::size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

}  // namespace

// Greedy matching with backtracking to the last '%' only, which is enough for LIKE patterns.
bool like(std::string_view text, std::string_view pattern) {
  std::size_t t = 0;
  std::size_t p = 0;
  std::size_t star_p = std::string_view::npos;
  std::size_t star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '%') {
      star_p = ++p;
      star_t = t;
    } else if (p < pattern.size() && pattern[p] == '_') {
      t += utf8_length(static_cast<unsigned char>(text[t]));
      ++p;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++t;
      ++p;
    } else if (star_p != std::string_view::npos) {
      p = star_p;
      star_t += utf8_length(static_cast<unsigned char>(text[star_t]));
      t = star_t;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '%') ++p;
  return p == pattern.size() && t == text.size();
}

Value evaluate(const Expr& e, const EvalContext& ctx) {
  using Kind = Expr::Kind;
  switch (e.kind) {
    case Kind::kLiteral:
      return e.literal;
    case Kind::kField:
      return Value::of_json(resolve(e.path, ctx.payload));
    case Kind::kNegate: {
      Value v = evaluate(*e.args[0], ctx);
      if (v.type() == Value::Type::kInt &&
          v.integer() != std::numeric_limits<std::int64_t>::min()) {
        return Value::of_int(-v.integer());
      }
      if (v.is_number()) return Value::of_double(-v.number());
      return {};
    }
    case Kind::kNot:
      return Value::of_bool(!evaluate(*e.args[0], ctx).truthy());
    case Kind::kAnd:
      return Value::of_bool(evaluate(*e.args[0], ctx).truthy() &&
                            evaluate(*e.args[1], ctx).truthy());
    case Kind::kOr:
      return Value::of_bool(evaluate(*e.args[0], ctx).truthy() ||
                            evaluate(*e.args[1], ctx).truthy());
    case Kind::kArithmetic:
      return arithmetic(e.op, evaluate(*e.args[0], ctx), evaluate(*e.args[1], ctx));
    case Kind::kCompare:
      return Value::of_bool(compare(e.op, evaluate(*e.args[0], ctx), evaluate(*e.args[1], ctx)));
    case Kind::kIsNull:
      return Value::of_bool(evaluate(*e.args[0], ctx).is_null() != e.negated);
    case Kind::kIn: {
      Value v = evaluate(*e.args[0], ctx);
      if (v.is_null()) return Value::of_bool(false);
      bool found = false;
      for (std::size_t i = 1; i < e.args.size() && !found; ++i) {
        found = equal(v, evaluate(*e.args[i], ctx));
      }
      return Value::of_bool(found != e.negated);
    }
    case Kind::kLike: {
      Value v = evaluate(*e.args[0], ctx);
      Value pattern = evaluate(*e.args[1], ctx);
      if (v.type() != Value::Type::kString || pattern.type() != Value::Type::kString) {
        return Value::of_bool(false);
      }
      return Value::of_bool(like(v.text(), pattern.text()) != e.negated);
    }
    case Kind::kBetween: {
      Value v = evaluate(*e.args[0], ctx);
      Value low = evaluate(*e.args[1], ctx);
      Value high = evaluate(*e.args[2], ctx);
      if (v.is_null() || low.is_null() || high.is_null()) return Value::of_bool(false);
      bool comparable = (v.is_number() && low.is_number() && high.is_number()) ||
                        (v.type() == Value::Type::kString && low.type() == Value::Type::kString &&
                         high.type() == Value::Type::kString);
      if (!comparable) return Value::of_bool(false);
      bool inside = compare(Op::kGe, v, low) && compare(Op::kLe, v, high);
      return Value::of_bool(inside != e.negated);
    }
    case Kind::kCall: {
      std::vector<Value> args;
      args.reserve(e.args.size());
      for (const auto& a : e.args) args.push_back(evaluate(*a, ctx));
      return e.function->fn(args, ctx);
    }
  }
  return {};
}

Query::Query(std::unique_ptr<QueryPlan> plan) : plan_(std::move(plan)) {}
Query::Query(Query&&) noexcept = default;
Query& Query::operator=(Query&&) noexcept = default;
Query::~Query() = default;

const std::string& Query::text() const { return plan_->text; }

std::optional<Json> Query::evaluate(const Json& payload, const Message& message) const {
  EvalContext ctx{payload, message};
  if (plan_->where && !sql::evaluate(*plan_->where, ctx).truthy()) return std::nullopt;
  Json result = Json::object();
  for (const auto& item : plan_->items) {
    if (item.star) {
      if (!payload.is_object()) continue;
      for (auto it = payload.begin(); it != payload.end(); ++it) result[it.key()] = it.value();
    } else if (item.expr->kind == Expr::Kind::kField) {
      // Copied as it is, so numbers keep their exact JSON form.
      const Json* found = resolve(item.expr->path, payload);
      result[item.name] = found ? *found : Json();
    } else {
      result[item.name] = sql::evaluate(*item.expr, ctx).to_json();
    }
  }
  return result;
}

namespace {

// nlohmann's DOM builder, stopping at the first array or object nested deeper than
// kMaxPayloadDepth: copying, comparing and printing a JSON value recurse once per level, so a
// payload of a few kilobytes of '[' would otherwise overflow the stack.
class DepthLimitedBuilder : public nlohmann::detail::json_sax_dom_parser<Json> {
 public:
  explicit DepthLimitedBuilder(Json& root) : json_sax_dom_parser(root) {}

  bool start_object(std::size_t length) {
    return deeper() && json_sax_dom_parser::start_object(length);
  }
  bool start_array(std::size_t length) {
    return deeper() && json_sax_dom_parser::start_array(length);
  }
  bool end_object() {
    --depth_;
    return json_sax_dom_parser::end_object();
  }
  bool end_array() {
    --depth_;
    return json_sax_dom_parser::end_array();
  }
  bool too_deep() const { return too_deep_; }

 private:
  bool deeper() {
    too_deep_ = ++depth_ > kMaxPayloadDepth;
    return !too_deep_;
  }

  std::size_t depth_ = 0;
  bool too_deep_ = false;
};

Json parse_payload(std::string_view payload) {
  Json input;
  DepthLimitedBuilder builder(input);
  if (!Json::sax_parse(payload, &builder)) {  // syntax errors throw
    throw PayloadError(builder.too_deep()
                           ? "payload is nested too deeply (more than " +
                                 std::to_string(kMaxPayloadDepth) + " levels of arrays and objects)"
                           : "payload is not valid JSON");
  }
  return input;
}

}  // namespace

std::string Query::run(std::string_view payload, const Message& message) const {
  Json input;
  try {
    input = parse_payload(payload);
  } catch (const Json::exception& e) {
    // A syntax error (parse_error) or a number beyond the range of a double (out_of_range), e.g.
    // "[json.exception.out_of_range.406] number overflow parsing '1e400'": keep the reason only.
    std::string_view what = e.what();
    if (auto end = what.find("] "); what.starts_with("[json.exception.") && end != what.npos) {
      what.remove_prefix(end + 2);
    }
    throw PayloadError("payload is not valid JSON: " + std::string(what));
  }
  if (!input.is_object()) {
    throw PayloadError(std::string("payload is JSON but not an object (it is ") +
                       (input.is_array() ? "an array" : std::string("a ") + input.type_name()) +
                       "); the query needs a JSON object");
  }
  auto result = evaluate(input, message);
  if (!result) return {};
  return result->dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace baetyl::sql
