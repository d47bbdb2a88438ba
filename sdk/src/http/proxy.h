#pragma once
// The proxy an http(s) request goes through, from the environment as curl reads it:
// http_proxy (lower case only) or https_proxy/HTTPS_PROXY, then all_proxy/ALL_PROXY; no_proxy or
// NO_PROXY lists "*", domain names (whole labels from the right), addresses and CIDR networks.
#include <optional>
#include <string>

namespace baetyl::http::detail {

struct Proxy {
  std::string host;  // IPv6 without brackets
  std::string port;
  std::string authorization;  // a Proxy-Authorization value, or empty
};

// The proxy for a request to `host`, none when no variable is set or no_proxy covers the host.
// Throws Failure for a proxy URL that cannot be used (another scheme than http://, bad syntax).
std::optional<Proxy> proxy_for(bool tls, const std::string& host);

}  // namespace baetyl::http::detail
