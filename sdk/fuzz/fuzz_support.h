#pragma once
// Shared by the libFuzzer targets: a failed property prints what broke and aborts, which libFuzzer
// reports as a crash and saves the input that caused it.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace baetyl::fuzz {

[[noreturn]] inline void fail(const char* file, int line, const char* condition,
                              std::string_view detail) {
  std::fprintf(stderr, "%s:%d: property failed: %s\n  %.*s\n", file, line, condition,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

// Printable form of bytes for the failure message: hex, at most `limit` bytes.
inline std::string hex(std::string_view data, std::size_t limit = 64) {
  constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < data.size() && i < limit; ++i) {
    if (i > 0) out += ' ';
    const auto c = static_cast<unsigned char>(data[i]);
    out += kDigits[c >> 4];
    out += kDigits[c & 0x0F];
  }
  if (data.size() > limit) out += " ...";
  return out;
}

}  // namespace baetyl::fuzz

// FUZZ_CHECK(condition, detail): `detail` is evaluated only when the condition fails.
#define FUZZ_CHECK(condition, detail)                                                 \
  do {                                                                                \
    if (!(condition)) ::baetyl::fuzz::fail(__FILE__, __LINE__, #condition, (detail)); \
  } while (false)
