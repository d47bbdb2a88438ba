#include "baetyl/http/client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <string_view>
#include <system_error>

namespace baetyl::http {
namespace {

// curl_global_init is not guaranteed to be thread-safe (nor are the TLS libraries it initialises
// on older builds), so it runs exactly once, the first time a Client is made. It is never undone:
// other threads may still be using curl while static objects are destroyed.
void global_init() {
  static const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (code != CURLE_OK) {
    throw std::runtime_error(std::string("curl_global_init failed: ") + curl_easy_strerror(code));
  }
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

[[noreturn]] void bad_address(const std::string& address, const std::string& reason) {
  throw std::invalid_argument("invalid HTTP client address '" + address + "': " + reason);
}

bool has_control_or_space(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](unsigned char c) { return c <= 0x20 || c == 0x7f; });
}

// host:port or [v6]:port. Returns "host:port" ready for a URL (brackets kept).
std::string parse_authority(const std::string& address, std::string_view authority,
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
    host = authority.substr(0, close + 1);
    const auto rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') bad_address(address, "unexpected text after IPv6 host");
      port = rest.substr(1);
      has_port = true;
    }
    if (host.size() <= 2) bad_address(address, "missing host");
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
  return std::string(host) + ":" + std::to_string(number);
}

bool valid_token(std::string_view text) {
  // RFC 9110 tchar.
  static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || extra.find(static_cast<char>(c)) != std::string_view::npos;
  });
}

struct CurlDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;
using CurlList = std::unique_ptr<curl_slist, CurlDeleter>;

void append_header(CurlList& list, const std::string& line) {
  curl_slist* next = curl_slist_append(list.get(), line.c_str());
  if (next == nullptr) throw std::bad_alloc();
  list.release();
  list.reset(next);
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  try {
    static_cast<std::string*>(user)->append(data, size * count);
    return size * count;
  } catch (...) {
    return 0;  // makes curl fail with CURLE_WRITE_ERROR
  }
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  try {
    auto& headers = *static_cast<std::map<std::string, std::string>*>(user);
    const std::string_view line(data, size * count);
    if (line.starts_with("HTTP/")) {
      headers.clear();  // a new response (after an interim one such as 100 Continue)
    } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
      const std::string name = lower(trim(line.substr(0, colon)));
      const std::string_view value = trim(line.substr(colon + 1));
      auto [it, inserted] = headers.try_emplace(name, value);
      if (!inserted) it->second.append(", ").append(value);
    }
    return size * count;
  } catch (...) {
    return 0;
  }
}

}  // namespace

Client::Client(ClientOptions options) : options_(std::move(options)) {
  const std::string& address = options_.address;
  if (address.empty()) bad_address(address, "empty address");
  const auto sep = address.find("://");
  if (sep == std::string::npos) {
    bad_address(address, "missing scheme (expected unix://, tcp://, http:// or https://)");
  }
  const std::string scheme = lower(std::string_view(address).substr(0, sep));
  const std::string_view rest = std::string_view(address).substr(sep + 3);

  if (scheme == "unix") {
    if (rest.empty()) bad_address(address, "missing socket path");
    transport_ = Transport::unix_socket;
    socket_path_ = rest;
    base_url_ = "http://localhost";  // the Host header; curl connects to the socket
  } else if (scheme == "tcp") {
    auto authority = rest;
    if (authority.ends_with('/')) authority.remove_suffix(1);
    if (authority.find('/') != std::string_view::npos) {
      bad_address(address, "a tcp address takes no path");
    }
    transport_ = Transport::tcp;
    base_url_ = "http://" + parse_authority(address, authority, nullptr);
  } else if (scheme == "http" || scheme == "https") {
    const auto slash = rest.find('/');
    const auto authority = rest.substr(0, slash);
    std::string_view prefix = slash == std::string_view::npos ? "" : rest.substr(slash);
    while (prefix.ends_with('/')) prefix.remove_suffix(1);
    if (has_control_or_space(prefix)) bad_address(address, "invalid character in path");
    if (prefix.find_first_of("?#") != std::string_view::npos) {
      bad_address(address, "query or fragment not allowed");
    }
    const bool tls = scheme == "https";
    transport_ = tls ? Transport::https : Transport::http;
    base_url_ = scheme + "://" + parse_authority(address, authority, tls ? "443" : "80") +
                std::string(prefix);
  } else {
    bad_address(address, "unknown scheme '" + scheme + "'");
  }
  if (options_.timeout.count() < 0) bad_address(address, "negative timeout");
  global_init();
}

Response Client::get(const std::string& path, const Headers& headers) const {
  return send(Request{"GET", path, headers, {}});
}

Response Client::put(const std::string& path, std::string body, const Headers& headers) const {
  return send(Request{"PUT", path, headers, std::move(body)});
}

Response Client::send(const Request& request) const {
  const std::string method = request.method.empty() ? "GET" : request.method;
  if (!valid_token(method)) throw std::invalid_argument("invalid HTTP method '" + method + "'");
  std::string path = request.path;
  if (path.empty() || path.front() != '/') path.insert(path.begin(), '/');
  if (has_control_or_space(path)) {
    throw std::invalid_argument("invalid character in HTTP request path '" + path + "'");
  }

  std::string shown_address = options_.address;
  while (shown_address.ends_with('/')) shown_address.pop_back();
  const std::string what = method + " " + shown_address + path;

  CurlHandle handle(curl_easy_init());
  if (!handle) throw HttpError(what + ": curl_easy_init failed", false);
  CURL* curl = handle.get();

  CurlList header_list;
  bool has_content_type = false;
  bool has_expect = false;
  for (const auto& [name, value] : request.headers) {
    if (!valid_token(name) ||
        value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      throw std::invalid_argument("invalid HTTP header '" + name + "'");
    }
    const std::string key = lower(name);
    has_content_type = has_content_type || key == "content-type";
    has_expect = has_expect || key == "expect";
    // "Name;" is curl's way to send a header with an empty value.
    append_header(header_list, value.empty() ? name + ";" : name + ": " + value);
  }
  // No 100-continue round trip (servers rarely answer it and curl would wait a second), and no
  // invented form content type when the caller did not name one.
  if (!has_expect) append_header(header_list, "Expect:");
  if (!has_content_type) append_header(header_list, "Content-Type:");

  const std::string url = base_url_ + path;
  Response response;
  char error_buffer[CURL_ERROR_SIZE] = {};

  CURLcode code = CURLE_OK;
  const auto set = [&code](CURLcode result) {
    if (code == CURLE_OK) code = result;
  };
  set(curl_easy_setopt(curl, CURLOPT_URL, url.c_str()));
  set(curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer));
  set(curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L));
  set(curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1)));
  set(curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L));
  set(curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L));
#if LIBCURL_VERSION_NUM >= 0x075500
  set(curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https"));
#endif
  set(curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count())));
  set(curl_easy_setopt(curl, CURLOPT_HTTPHEADER, header_list.get()));
  set(curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &on_body));
  set(curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body));
  set(curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &on_header));
  set(curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers));

  switch (transport_) {
    case Transport::unix_socket:
      set(curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_path_.c_str()));
      [[fallthrough]];
    case Transport::tcp:
      set(curl_easy_setopt(curl, CURLOPT_PROXY, ""));  // local peers: never via a proxy
      break;
    case Transport::https:
      if (!options_.ca.empty()) set(curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca.c_str()));
      if (!options_.cert.empty()) {
        set(curl_easy_setopt(curl, CURLOPT_SSLCERT, options_.cert.c_str()));
      }
      if (!options_.key.empty()) set(curl_easy_setopt(curl, CURLOPT_SSLKEY, options_.key.c_str()));
      set(curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, options_.insecure_skip_verify ? 0L : 1L));
      set(curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, options_.insecure_skip_verify ? 0L : 2L));
      break;
    case Transport::http:
      break;
  }

  if (method == "GET" && request.body.empty()) {
    set(curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L));
  } else if (method == "HEAD") {
    set(curl_easy_setopt(curl, CURLOPT_NOBODY, 1L));
  } else {
    set(curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str()));
    if (!request.body.empty() || method == "PUT" || method == "POST" || method == "PATCH") {
      // Sent as is (not copied) with a Content-Length, which is 0 for an empty PUT.
      set(curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                           static_cast<curl_off_t>(request.body.size())));
      set(curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data()));
    }
  }

  if (code == CURLE_OK) code = curl_easy_perform(curl);
  if (code != CURLE_OK) {
    std::string message = what + ": " + curl_easy_strerror(code);
    std::string detail;
    if (code == CURLE_COULDNT_CONNECT) {
      // curl's own text names "localhost port 80" even for a socket; the errno tells more
      // (no such file, connection refused, permission denied).
      long os_error = 0;
      curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_error);
      if (os_error != 0) {
        detail = std::error_code(static_cast<int>(os_error), std::generic_category()).message();
      }
    } else {
      // The buffer often adds the useful part (the TLS failure, bytes received...).
      detail = trim(error_buffer);
      if (detail == curl_easy_strerror(code)) detail.clear();
    }
    if (!detail.empty()) message.append(" (").append(detail).append(")");
    throw HttpError(message, code == CURLE_OPERATION_TIMEDOUT);
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

}  // namespace baetyl::http
