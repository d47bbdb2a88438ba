#pragma once
// Pieces of the HTTP client shared by its parts: address parsing, text helpers and the failure
// type whose texts keep curl's wording.
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "baetyl/asio.h"

namespace baetyl::http::detail {

// An exchange that failed for a reason other than the timeout. The reasons keep the wording of
// curl's error texts, which callers and logs have seen so far.
class Failure : public std::runtime_error {
 public:
  Failure(const std::string& reason, const std::string& detail)
      : std::runtime_error(detail.empty() ? reason : reason + " (" + detail + ")") {}
  Failure(const std::string& reason, const error_code& ec) : Failure(reason, ec.message()) {}
};

// Throws std::invalid_argument: "invalid HTTP client address '<address>': <reason>".
[[noreturn]] void bad_address(const std::string& address, const std::string& reason);
bool has_control_or_space(std::string_view text);

std::string lower(std::string_view text);
std::string_view trim(std::string_view text);
std::optional<asio::ip::address> ip_address(std::string_view text);

// An IPv6 address in brackets, anything else as is.
std::string url_host(const std::string& host);

struct Authority {
  std::string host;  // IPv6 without brackets
  int port = 0;
};

// host:port or [v6]:port; `default_port` when none is given (null: the port is required).
// Throws std::invalid_argument naming `address` and what is wrong.
Authority parse_authority(const std::string& address, std::string_view authority,
                          const char* default_port);

// The Host header names the port only when it is not the scheme's default, as browsers and curl do.
std::string host_header(const Authority& authority, int default_port);

}  // namespace baetyl::http::detail
