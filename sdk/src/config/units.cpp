#include "baetyl/config/units.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

namespace baetyl::config {
namespace {

std::string lower_trimmed(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

template <class T>
std::optional<T> fail(std::string* error, std::string message) {
  if (error) *error = std::move(message);
  return std::nullopt;
}

}  // namespace

std::optional<ByteSize> parse_byte_size(std::string_view text, std::string* error) {
  const std::string original(text);
  std::string s = lower_trimmed(text);
  auto invalid = [&](const std::string& why) {
    return fail<ByteSize>(error, "invalid size '" + original + "': " + why +
                                     " (use a number with unit b, k, m or g, e.g. 32k)");
  };
  if (s.empty()) return invalid("empty");

  std::size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0) return invalid("no number");

  std::uint64_t number = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + digits, number);
  if (ec != std::errc() || ptr != s.data() + digits) return invalid("number too large");

  std::string unit = s.substr(digits);
  unsigned shift = 0;
  if (unit.empty() || unit == "b") {
    shift = 0;
  } else if (unit == "k" || unit == "kb") {
    shift = 10;
  } else if (unit == "m" || unit == "mb") {
    shift = 20;
  } else if (unit == "g" || unit == "gb") {
    shift = 30;
  } else {
    return invalid("unknown unit '" + unit + "'");
  }
  if (number > (std::numeric_limits<std::uint64_t>::max() >> shift)) {
    return invalid("number too large");
  }
  return ByteSize{number << shift};
}

std::string format_byte_size(ByteSize size) {
  static constexpr struct {
    unsigned shift;
    const char* unit;
  } units[] = {{30, "g"}, {20, "m"}, {10, "k"}};
  for (const auto& u : units) {
    std::uint64_t step = std::uint64_t{1} << u.shift;
    if (size.bytes >= step && size.bytes % step == 0) {
      return std::to_string(size.bytes >> u.shift) + u.unit;
    }
  }
  return std::to_string(size.bytes) + "b";
}

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text, std::string* error) {
  using std::chrono::nanoseconds;
  const std::string original(text);
  std::string s = lower_trimmed(text);
  auto invalid = [&](const std::string& why) {
    return fail<nanoseconds>(error, "invalid duration '" + original + "': " + why +
                                        " (use units h, m, s, ms, us, ns, e.g. 30s or 1m30s)");
  };
  if (s.empty()) return invalid("empty");
  if (s == "0") return nanoseconds(0);

  bool negative = false;
  std::size_t i = 0;
  if (s[i] == '-' || s[i] == '+') {
    negative = s[i] == '-';
    ++i;
  }
  if (i == s.size()) return invalid("no number");

  long double total = 0;  // nanoseconds
  while (i < s.size()) {
    std::size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == start) return invalid("expected a number at '" + s.substr(start) + "'");
    std::string number = s.substr(start, i - start);
    if (number == "." || number.find('.') != number.rfind('.')) return invalid("bad number");

    std::size_t unit_start = i;
    // Up to the next number; "µs" is two bytes of UTF-8, not ASCII letters.
    while (i < s.size() && !std::isdigit(static_cast<unsigned char>(s[i])) && s[i] != '.') ++i;
    std::string unit = s.substr(unit_start, i - unit_start);
    long double scale = 0;
    if (unit == "ns") {
      scale = 1;
    } else if (unit == "us" || unit == "µs") {
      scale = 1e3;
    } else if (unit == "ms") {
      scale = 1e6;
    } else if (unit == "s") {
      scale = 1e9;
    } else if (unit == "m") {
      scale = 60e9;
    } else if (unit == "h") {
      scale = 3600e9;
    } else if (unit.empty()) {
      return invalid("missing unit after " + number);
    } else {
      return invalid("unknown unit '" + unit + "'");
    }
    total += std::stold(number) * scale;
  }
  if (total > static_cast<long double>(std::numeric_limits<std::int64_t>::max())) {
    return invalid("too large");
  }
  auto ns = static_cast<std::int64_t>(std::llround(static_cast<double>(total)));
  return nanoseconds(negative ? -ns : ns);
}

std::string format_duration(std::chrono::nanoseconds duration) {
  std::int64_t ns = duration.count();
  if (ns == 0) return "0s";
  std::string sign = ns < 0 ? "-" : "";
  std::uint64_t v = ns < 0 ? static_cast<std::uint64_t>(-(ns + 1)) + 1 : static_cast<std::uint64_t>(ns);
  if (v < 1'000) return sign + std::to_string(v) + "ns";
  if (v < 1'000'000) return sign + std::to_string(v / 1'000) + "us";
  if (v < 1'000'000'000) return sign + std::to_string(v / 1'000'000) + "ms";

  std::uint64_t total_ms = v / 1'000'000;
  std::uint64_t hours = total_ms / 3'600'000;
  std::uint64_t minutes = total_ms / 60'000 % 60;
  std::uint64_t seconds = total_ms / 1000 % 60;
  std::uint64_t millis = total_ms % 1000;
  std::string sec = std::to_string(seconds);
  if (millis) {
    std::string frac = std::to_string(millis);
    frac.insert(0, 3 - frac.size(), '0');
    while (frac.back() == '0') frac.pop_back();
    sec += "." + frac;
  }
  std::string out = sign;
  if (hours) out += std::to_string(hours) + "h" + std::to_string(minutes) + "m";
  else if (minutes) out += std::to_string(minutes) + "m";
  return out + sec + "s";
}

}  // namespace baetyl::config
