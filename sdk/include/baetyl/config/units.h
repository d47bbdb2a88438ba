#pragma once
// The units of the configuration files: sizes (b, k, m, g) and durations (s, m, h, ...).
#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace baetyl::config {

// A size in bytes, written in configuration as `32k`, `4m`, `1g`, `512b` or a plain byte count.
struct ByteSize {
  std::uint64_t bytes = 0;
  auto operator<=>(const ByteSize&) const = default;
};

constexpr ByteSize operator""_KiB(unsigned long long n) { return ByteSize{n << 10}; }
constexpr ByteSize operator""_MiB(unsigned long long n) { return ByteSize{n << 20}; }
constexpr ByteSize operator""_GiB(unsigned long long n) { return ByteSize{n << 30}; }

// Parses a size: digits followed by an optional unit b, k, m or g (case-insensitive, `kb`, `mb`
// and `gb` also accepted; units are powers of 1024). Returns nullopt and sets `error` when invalid.
std::optional<ByteSize> parse_byte_size(std::string_view text, std::string* error = nullptr);
std::string format_byte_size(ByteSize size);

// Parses a duration the way Go's time.ParseDuration does: a sequence of decimal numbers, each with
// a unit (ns, us, ms, s, m, h), e.g. `30s`, `1m30s`, `1.5h`, `500ms`. A bare number (other than 0)
// has no unit and is rejected, so `interval: 5` is an error rather than five nanoseconds.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text,
                                                       std::string* error = nullptr);
// Formats like Go: 1m30s, 500ms, 2h0m0s.
std::string format_duration(std::chrono::nanoseconds duration);

}  // namespace baetyl::config
