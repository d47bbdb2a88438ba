#pragma once
// Internal: the parsed form of a query and the values its expressions produce.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sql.h"

namespace baetyl::sql {

// The result of an expression. Strings and JSON objects/arrays taken from the payload or the
// query are referenced, not copied; the referenced data outlives the evaluation.
class Value {
 public:
  enum class Type : std::uint8_t { kNull, kBool, kInt, kDouble, kString, kJson };

  Value() = default;
  static Value of_bool(bool b) {
    Value v;
    v.type_ = Type::kBool;
    v.b_ = b;
    return v;
  }
  static Value of_int(std::int64_t i) {
    Value v;
    v.type_ = Type::kInt;
    v.i_ = i;
    return v;
  }
  static Value of_double(double d) {
    Value v;
    v.type_ = Type::kDouble;
    v.d_ = d;
    return v;
  }
  static Value of_string(std::string s) {
    Value v;
    v.type_ = Type::kString;
    v.owned_ = std::move(s);
    return v;
  }
  // The string must outlive the value.
  static Value of_string_ref(const std::string* s) {
    Value v;
    v.type_ = Type::kString;
    v.str_ = s;
    return v;
  }
  // Scalars become their own types; objects and arrays are referenced. nullptr is null.
  static Value of_json(const Json* j);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_number() const { return type_ == Type::kInt || type_ == Type::kDouble; }
  bool boolean() const { return b_; }
  std::int64_t integer() const { return i_; }
  double number() const { return type_ == Type::kInt ? static_cast<double>(i_) : d_; }
  std::string_view text() const { return str_ ? std::string_view(*str_) : owned_; }
  const Json& json() const { return *json_; }

  // NULL, false, 0, "" and empty arrays/objects are false; everything else is true.
  bool truthy() const;
  Json to_json() const;
  // Strings as they are, everything else as compact JSON.
  std::string to_text() const;

 private:
  Type type_ = Type::kNull;
  union {
    bool b_;
    std::int64_t i_;
    double d_;
    const Json* json_ = nullptr;
  };
  const std::string* str_ = nullptr;
  std::string owned_;
};

struct PathStep {
  std::string key;        // a member name, or
  std::size_t index = 0;  // an array index when is_index
  bool is_index = false;
};

enum class Op : std::uint8_t {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kConcat,  // arithmetic, ||
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,  // comparison
};

struct EvalContext {
  const Json& payload;
  const Message& message;
};

struct Builtin;

struct Expr {
  enum class Kind : std::uint8_t {
    kLiteral,
    kField,
    kNegate,
    kNot,
    kArithmetic,
    kCompare,
    kAnd,
    kOr,
    kIn,
    kLike,
    kBetween,
    kIsNull,
    kCall,
  };
  Kind kind = Kind::kLiteral;
  Op op = Op::kAdd;
  std::size_t height = 1;  // levels of this tree: 1 for a leaf, at most kMaxQueryDepth
  bool negated = false;    // NOT IN, NOT LIKE, NOT BETWEEN, IS NOT NULL
  std::string literal_string;
  Value literal;
  std::vector<PathStep> path;
  const Builtin* function = nullptr;
  std::vector<std::unique_ptr<Expr>> args;
};

using BuiltinFn = Value (*)(std::vector<Value>& args, const EvalContext& ctx);

struct Builtin {
  std::string_view name;
  std::size_t min_args;
  std::size_t max_args;  // SIZE_MAX: any number
  BuiltinFn fn;
};

// The function of that (lower-case) name, or nullptr.
const Builtin* find_builtin(std::string_view lower_name);
// Every built-in function, in the order of the reference (docs/sql.md is checked against it).
std::span<const Builtin> builtins();

struct SelectItem {
  bool star = false;
  std::string name;  // the output key
  std::unique_ptr<Expr> expr;
};

struct QueryPlan {
  std::string text;
  std::vector<SelectItem> items;
  std::unique_ptr<Expr> where;  // may be null
};

Value evaluate(const Expr& expr, const EvalContext& ctx);
const Json* resolve(const std::vector<PathStep>& path, const Json& payload);

// SQL LIKE: % any run of characters, _ exactly one (UTF-8) character.
bool like(std::string_view text, std::string_view pattern);

}  // namespace baetyl::sql
