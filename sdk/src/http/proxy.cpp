#include "proxy.h"

#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "address.h"
#include "baetyl/base64.h"

namespace baetyl::http::detail {
namespace {

std::string getenv_string(const char* name) {
  const char* value = ::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

std::string first_set(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (std::string value = getenv_string(name); !value.empty()) return value;
  }
  return {};
}

std::string proxy_variable(bool tls) {
  // Only the lower-case http_proxy, as curl: a CGI program gets HTTP_PROXY from a request header.
  if (tls) return first_set({"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"});
  return first_set({"http_proxy", "all_proxy", "ALL_PROXY"});
}

bool in_network(const asio::ip::address& address, std::string_view network) {
  const auto slash = network.find('/');
  const auto base = ip_address(network.substr(0, slash));
  if (!base || base->is_v4() != address.is_v4()) return false;
  if (slash == std::string_view::npos) return *base == address;

  const std::string bits_text(network.substr(slash + 1));
  if (bits_text.empty() || bits_text.size() > 3 ||
      !std::all_of(bits_text.begin(), bits_text.end(),
                   [](unsigned char c) { return std::isdigit(c) != 0; })) {
    return false;
  }
  const auto bytes = [](const asio::ip::address& a) {
    if (a.is_v4()) {
      const auto b = a.to_v4().to_bytes();
      return std::vector<unsigned char>(b.begin(), b.end());
    }
    const auto b = a.to_v6().to_bytes();
    return std::vector<unsigned char>(b.begin(), b.end());
  };
  const std::vector<unsigned char> left = bytes(address), right = bytes(*base);
  const std::size_t bits = std::min<std::size_t>(std::stoul(bits_text), left.size() * 8);
  for (std::size_t i = 0; i < bits; ++i) {
    const unsigned mask = 0x80u >> (i % 8);
    if ((left[i / 8] & mask) != (right[i / 8] & mask)) return false;
  }
  return true;
}

bool host_matches(std::string_view host, std::string_view entry) {
  if (entry.starts_with('[')) {
    entry.remove_prefix(1);
    if (const auto close = entry.find(']'); close != std::string_view::npos) {
      entry = entry.substr(0, close);
    }
  }
  if (const auto address = ip_address(host)) return in_network(*address, entry);
  while (entry.starts_with('.')) entry.remove_prefix(1);
  if (entry.ends_with('.')) entry.remove_suffix(1);
  if (entry.empty()) return false;
  const std::string name = lower(host), suffix = lower(entry);
  return name == suffix ||
         (name.size() > suffix.size() && name.ends_with(suffix) &&
          name[name.size() - suffix.size() - 1] == '.');
}

// no_proxy as curl reads it: "*", or names matching whole domain labels from the right,
// addresses, and networks in CIDR notation, separated by commas or spaces.
bool bypasses_proxy(std::string_view host) {
  const std::string list = first_set({"no_proxy", "NO_PROXY"});
  std::string_view rest = list;
  while (!rest.empty()) {
    const auto end = rest.find_first_of(", \t");
    const std::string_view entry = trim(rest.substr(0, end));
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (entry == "*") return true;
    if (!entry.empty() && host_matches(host, entry)) return true;
  }
  return false;
}

std::string percent_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(text[i + 1]) &&
        std::isxdigit(text[i + 2])) {
      out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// [http://][user:password@]host[:port][/], the port defaulting to 1080 as in curl.
Proxy parse_proxy(const std::string& url) {
  std::string_view rest = url;
  if (const auto sep = rest.find("://"); sep != std::string_view::npos) {
    if (lower(rest.substr(0, sep)) != "http") {
      throw Failure("Unsupported proxy scheme", "only http:// proxies: '" + url + "'");
    }
    rest.remove_prefix(sep + 3);
  }
  rest = rest.substr(0, rest.find('/'));
  Proxy proxy;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const auto user_info = rest.substr(0, at);
    const auto colon = user_info.find(':');
    const std::string user = percent_decode(user_info.substr(0, colon));
    const std::string password =
        colon == std::string_view::npos ? std::string() : percent_decode(user_info.substr(colon + 1));
    proxy.authorization = "Basic " + base64_encode(user + ":" + password);
    rest.remove_prefix(at + 1);
  }
  try {
    const Authority authority = parse_authority(url, rest, "1080");
    proxy.host = authority.host;
    proxy.port = std::to_string(authority.port);
  } catch (const std::invalid_argument& e) {
    throw Failure("Unsupported proxy syntax", e.what());
  }
  return proxy;
}

}  // namespace

std::optional<Proxy> proxy_for(bool tls, const std::string& host) {
  const std::string url = proxy_variable(tls);
  if (url.empty() || bypasses_proxy(host)) return std::nullopt;
  return parse_proxy(url);
}

}  // namespace baetyl::http::detail
