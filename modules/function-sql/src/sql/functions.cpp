// The built-in functions. A NULL (or wrongly typed) argument gives NULL, except in concat() and
// coalesce(), which skip NULLs.
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>

#include "ast.h"

namespace baetyl::sql {
namespace {

using Type = Value::Type;
using Args = std::vector<Value>;

bool is_string(const Value& v) { return v.type() == Type::kString; }

// An integer when the double holds one that fits, so round(2.5) is 3, not 3.0.
Value integral(double d) {
  if (std::isfinite(d) && d >= -9.2233720368547758e18 && d < 9.2233720368547758e18) {
    return Value::of_int(static_cast<std::int64_t>(d));
  }
  return Value::of_double(d);
}

std::size_t code_points(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// Byte offset of code point `n` (or the size when there are fewer).
std::size_t byte_offset(std::string_view s, std::size_t n) {
  std::size_t i = 0;
  while (i < s.size() && n > 0) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    --n;
  }
  return i;
}

Value fn_qos(Args&, const EvalContext& ctx) { return Value::of_int(ctx.message.qos); }

// topic() is the whole topic; topic(n) its n-th level, from 1.
Value fn_topic(Args& a, const EvalContext& ctx) {
  std::string_view topic = ctx.message.topic;
  if (a.empty()) return Value::of_string(std::string(topic));
  if (a[0].type() != Type::kInt || a[0].integer() < 1) return {};
  std::int64_t level = a[0].integer();
  std::size_t start = 0;
  for (std::int64_t i = 1; i < level; ++i) {
    start = topic.find('/', start);
    if (start == std::string_view::npos) return {};
    ++start;
  }
  std::size_t end = topic.find('/', start);
  return Value::of_string(std::string(topic.substr(start, end - start)));
}

Value fn_timestamp(Args&, const EvalContext& ctx) { return Value::of_int(ctx.message.timestamp); }
Value fn_function_name(Args&, const EvalContext& ctx) {
  return Value::of_string(std::string(ctx.message.function_name));
}
Value fn_invoke_id(Args&, const EvalContext& ctx) {
  return Value::of_string(std::string(ctx.message.invoke_id));
}

template <int (*Convert)(int)>
Value map_ascii(Args& a, const EvalContext&) {
  if (!is_string(a[0])) return {};
  std::string s(a[0].text());
  for (char& c : s) c = static_cast<char>(Convert(static_cast<unsigned char>(c)));
  return Value::of_string(std::move(s));
}

Value fn_length(Args& a, const EvalContext&) {
  if (is_string(a[0])) return Value::of_int(static_cast<std::int64_t>(code_points(a[0].text())));
  if (a[0].type() == Type::kJson)
    return Value::of_int(static_cast<std::int64_t>(a[0].json().size()));
  return {};
}

Value fn_concat(Args& a, const EvalContext&) {
  std::string out;
  for (const auto& v : a) {
    if (!v.is_null()) out += v.to_text();
  }
  return Value::of_string(std::move(out));
}

// substring(s, start[, length]): `start` counts from 1; a start below 1 is taken as 1.
Value fn_substring(Args& a, const EvalContext&) {
  if (!is_string(a[0]) || a[1].type() != Type::kInt) return {};
  if (a.size() == 3 && (a[2].type() != Type::kInt || a[2].integer() < 0)) return {};
  std::string_view s = a[0].text();
  std::size_t start = a[1].integer() < 1 ? 0 : static_cast<std::size_t>(a[1].integer() - 1);
  std::size_t from = byte_offset(s, start);
  std::size_t to = s.size();
  if (a.size() == 3) {
    to = from + byte_offset(s.substr(from), static_cast<std::size_t>(a[2].integer()));
  }
  return Value::of_string(std::string(s.substr(from, to - from)));
}

bool blank(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

template <bool Left, bool Right>
Value trim(Args& a, const EvalContext&) {
  if (!is_string(a[0])) return {};
  std::string_view s = a[0].text();
  while (Left && !s.empty() && blank(s.front())) s.remove_prefix(1);
  while (Right && !s.empty() && blank(s.back())) s.remove_suffix(1);
  return Value::of_string(std::string(s));
}

Value fn_replace(Args& a, const EvalContext&) {
  if (!is_string(a[0]) || !is_string(a[1]) || !is_string(a[2])) return {};
  std::string_view s = a[0].text();
  std::string_view from = a[1].text();
  std::string_view to = a[2].text();
  if (from.empty()) return Value::of_string(std::string(s));
  std::string out;
  std::size_t pos = 0;
  for (std::size_t hit; (hit = s.find(from, pos)) != std::string_view::npos;
       pos = hit + from.size()) {
    out.append(s.substr(pos, hit - pos)).append(to);
  }
  out.append(s.substr(pos));
  return Value::of_string(std::move(out));
}

Value fn_startswith(Args& a, const EvalContext&) {
  if (!is_string(a[0]) || !is_string(a[1])) return {};
  return Value::of_bool(a[0].text().starts_with(a[1].text()));
}

Value fn_endswith(Args& a, const EvalContext&) {
  if (!is_string(a[0]) || !is_string(a[1])) return {};
  return Value::of_bool(a[0].text().ends_with(a[1].text()));
}

Value fn_abs(Args& a, const EvalContext&) {
  if (a[0].type() == Type::kInt && a[0].integer() != std::numeric_limits<std::int64_t>::min()) {
    return Value::of_int(a[0].integer() < 0 ? -a[0].integer() : a[0].integer());
  }
  if (!a[0].is_number()) return {};
  return Value::of_double(std::fabs(a[0].number()));
}

template <double (*Round)(double)>
Value rounding(Args& a, const EvalContext&) {
  if (a[0].type() == Type::kInt) return a[0];
  if (!a[0].is_number()) return {};
  return integral(Round(a[0].number()));
}

// round(x) to an integer (halves away from zero); round(x, n) to n decimal places.
Value fn_round(Args& a, const EvalContext& ctx) {
  if (a.size() == 1) return rounding<std::round>(a, ctx);
  if (!a[0].is_number() || a[1].type() != Type::kInt) return {};
  if (a[0].type() == Type::kInt && a[1].integer() >= 0) return a[0];
  double scale = std::pow(10.0, static_cast<double>(a[1].integer()));
  return Value::of_double(std::round(a[0].number() * scale) / scale);
}

Value fn_sqrt(Args& a, const EvalContext&) {
  if (!a[0].is_number() || a[0].number() < 0) return {};
  return Value::of_double(std::sqrt(a[0].number()));
}

Value fn_power(Args& a, const EvalContext&) {
  if (!a[0].is_number() || !a[1].is_number()) return {};
  double r = std::pow(a[0].number(), a[1].number());
  if (!std::isfinite(r)) return {};
  if (a[0].type() == Type::kInt && a[1].type() == Type::kInt && a[1].integer() >= 0 &&
      std::fabs(r) < 9.0e15) {
    return Value::of_int(static_cast<std::int64_t>(r));
  }
  return Value::of_double(r);
}

Value fn_coalesce(Args& a, const EvalContext&) {
  for (auto& v : a) {
    if (!v.is_null()) return std::move(v);
  }
  return {};
}

Value fn_tostring(Args& a, const EvalContext&) {
  if (a[0].is_null()) return {};
  return Value::of_string(a[0].to_text());
}

// A number from a number or a numeric string; NULL otherwise.
Value fn_tonumber(Args& a, const EvalContext&) {
  if (a[0].is_number()) return a[0];
  if (!is_string(a[0])) return {};
  std::string_view s = a[0].text();
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  if (s.empty()) return {};
  std::int64_t i = 0;
  auto [iend, iec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (iec == std::errc() && iend == s.data() + s.size()) return Value::of_int(i);
  double d = 0;
  auto [dend, dec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (dec == std::errc() && dend == s.data() + s.size() && std::isfinite(d)) {
    return Value::of_double(d);
  }
  return {};
}

constexpr std::size_t kAny = SIZE_MAX;

constexpr std::array kBuiltins = {
    Builtin{"qos", 0, 0, fn_qos},
    Builtin{"topic", 0, 1, fn_topic},
    Builtin{"timestamp", 0, 0, fn_timestamp},
    Builtin{"function_name", 0, 0, fn_function_name},
    Builtin{"invoke_id", 0, 0, fn_invoke_id},
    Builtin{"lower", 1, 1, map_ascii<std::tolower>},
    Builtin{"upper", 1, 1, map_ascii<std::toupper>},
    Builtin{"length", 1, 1, fn_length},
    Builtin{"concat", 1, kAny, fn_concat},
    Builtin{"substring", 2, 3, fn_substring},
    Builtin{"substr", 2, 3, fn_substring},
    Builtin{"trim", 1, 1, trim<true, true>},
    Builtin{"ltrim", 1, 1, trim<true, false>},
    Builtin{"rtrim", 1, 1, trim<false, true>},
    Builtin{"replace", 3, 3, fn_replace},
    Builtin{"startswith", 2, 2, fn_startswith},
    Builtin{"endswith", 2, 2, fn_endswith},
    Builtin{"abs", 1, 1, fn_abs},
    Builtin{"round", 1, 2, fn_round},
    Builtin{"floor", 1, 1, rounding<std::floor>},
    Builtin{"ceil", 1, 1, rounding<std::ceil>},
    Builtin{"sqrt", 1, 1, fn_sqrt},
    Builtin{"power", 2, 2, fn_power},
    Builtin{"coalesce", 1, kAny, fn_coalesce},
    Builtin{"tostring", 1, 1, fn_tostring},
    Builtin{"tonumber", 1, 1, fn_tonumber},
};

}  // namespace

const Builtin* find_builtin(std::string_view lower_name) {
  for (const auto& b : kBuiltins) {
    if (b.name == lower_name) return &b;
  }
  return nullptr;
}

std::span<const Builtin> builtins() { return kBuiltins; }

}  // namespace baetyl::sql
