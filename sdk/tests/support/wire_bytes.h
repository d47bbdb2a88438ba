#pragma once
// Raw wire bytes for the codec tests: written from a list of values, shown as hex.
#include <initializer_list>
#include <string>
#include <string_view>

namespace baetyl::testing {

// Bytes from a list of values, e.g. bytes({0x30, 0x03}) + "abc".
inline std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out += static_cast<char>(v);
  return out;
}

// "30 03 61" for a failure message.
inline std::string hex(std::string_view data) {
  std::string out;
  constexpr char kDigits[] = "0123456789abcdef";
  for (unsigned char c : data) {
    if (!out.empty()) out += ' ';
    out += kDigits[c >> 4];
    out += kDigits[c & 0x0F];
  }
  return out;
}

}  // namespace baetyl::testing
