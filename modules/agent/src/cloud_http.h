#pragma once
// The agent's HTTPS to its cloud, on libcurl: the report POST and the volume downloads.
//
// Only https:// URLs, also after a redirect; at most kMaxRedirects redirects are followed (a POST
// stays a POST with its body). The server is verified against `ca` (peer and host name) unless
// `insecure_skip_verify`; `cert` and `key` are sent when the server asks for a client
// certificate. TLS 1.2 or later. Proxies come from the environment as libcurl reads it:
// https_proxy or HTTPS_PROXY, else all_proxy or ALL_PROXY, with no_proxy or NO_PROXY.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace baetyl::agent {

struct CloudHttpOptions {
  // Limit of the connection, and of the whole exchange.
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
  std::string ca;    // PEM file of the CA to verify the server with; empty: the system's
  std::string cert;  // PEM files of the client certificate and its key; empty: none
  std::string key;
  bool insecure_skip_verify = false;
};

struct CloudResponse {
  long status = 0;
  std::string body;
};

// An exchange that failed: "<METHOD> <url>: <curl's reason> (<curl's details>)", or
// "<METHOD> <url> answered HTTP <status>" (status() then tells it, else 0).
class CloudHttpError : public std::runtime_error {
 public:
  CloudHttpError(const std::string& message, long status)
      : std::runtime_error(message), status_(status) {}
  long status() const noexcept { return status_; }

 private:
  long status_;
};

class CloudHttp {
 public:
  static constexpr long kMaxRedirects = 3;

  // Initialises libcurl for the process (once; later calls do nothing). Call it before threads
  // start; the constructor calls it too.
  static void init_global();

  explicit CloudHttp(CloudHttpOptions options);

  // POSTs `body` as application/json with `headers` ("Name: value") added. Returns the status
  // (below 400) and the body of the answer; throws CloudHttpError.
  CloudResponse post_json(const std::string& url, const std::string& body,
                          const std::vector<std::string>& headers = {}) const;

  // GETs `url` into `file` (created or truncated). The download stops as soon as the body is
  // known to be longer than `max_bytes` ("Maximum file size exceeded (the body is larger than N
  // bytes)"). Throws CloudHttpError; `file` is then removed.
  void download(const std::string& url, const std::filesystem::path& file,
                std::uint64_t max_bytes) const;

  const CloudHttpOptions& options() const { return options_; }

 private:
  CloudHttpOptions options_;
};

}  // namespace baetyl::agent
