#include "address.h"

#include <algorithm>
#include <cctype>

namespace baetyl::http::detail {

[[noreturn]] void bad_address(const std::string& address, const std::string& reason) {
  throw std::invalid_argument("invalid HTTP client address '" + address + "': " + reason);
}

bool has_control_or_space(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](unsigned char c) { return c <= 0x20 || c == 0x7f; });
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view text) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return text;
}

std::optional<asio::ip::address> ip_address(std::string_view text) {
  error_code ec;
  const auto address = asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  return address;
}

std::string url_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

Authority parse_authority(const std::string& address, std::string_view authority,
                          const char* default_port) {
  if (authority.empty()) bad_address(address, "missing host");
  if (authority.find('@') != std::string_view::npos) {
    bad_address(address, "user info not supported");
  }
  if (has_control_or_space(authority)) bad_address(address, "invalid character in host");

  std::string_view host;
  std::string_view port;
  bool has_port = false;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) bad_address(address, "unterminated IPv6 host");
    host = authority.substr(1, close - 1);
    const auto rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') bad_address(address, "unexpected text after IPv6 host");
      port = rest.substr(1);
      has_port = true;
    }
    if (host.empty()) bad_address(address, "missing host");
  } else {
    const auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      if (authority.find(':') != colon) bad_address(address, "IPv6 hosts must be in brackets");
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      has_port = true;
    } else {
      host = authority;
    }
    if (host.empty()) bad_address(address, "missing host");
  }

  if (!has_port) {
    if (default_port == nullptr) bad_address(address, "missing port");
    port = default_port;
  }
  if (port.empty()) bad_address(address, "missing port");
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(),
                                      [](unsigned char c) { return std::isdigit(c) != 0; })) {
    bad_address(address, "invalid port '" + std::string(port) + "'");
  }
  const int number = std::stoi(std::string(port));
  if (number < 1 || number > 65535) {
    bad_address(address, "port out of range '" + std::string(port) + "'");
  }
  return Authority{std::string(host), number};
}

std::string host_header(const Authority& authority, int default_port) {
  const std::string host = url_host(authority.host);
  return authority.port == default_port ? host : host + ":" + std::to_string(authority.port);
}

}  // namespace baetyl::http::detail
