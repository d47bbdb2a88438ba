#pragma once
// A small blocking HTTP/1.1 client on Boost.Beast: the master API over a Unix socket or TCP, and
// HTTPS (OpenSSL) for the cloud agent.
#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace baetyl::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct ClientOptions {
  // unix:///var/run/baetyl.sock   HTTP over a Unix domain socket (the path after `unix://`)
  // tcp://127.0.0.1:50050         plain HTTP over TCP; the port is required
  // http://host[:port][/prefix]   plain HTTP (default port 80)
  // https://host[:port][/prefix]  HTTPS using ca/cert/key (default port 443)
  // A prefix of an http(s) address is put in front of every request path. unix and tcp
  // addresses never go through a proxy; http(s) ones honour the usual *_proxy variables as curl
  // does (http_proxy, https_proxy/HTTPS_PROXY, all_proxy/ALL_PROXY, no_proxy/NO_PROXY): plain
  // requests in absolute form to an http:// proxy, https through a CONNECT tunnel.
  std::string address{};
  // Limit for a whole exchange (connect, send, receive); zero means none.
  std::chrono::milliseconds timeout{30000};
  // PEM files for https: the CA bundle to trust (system default when empty), and a client
  // certificate with its key for two-way TLS.
  std::string ca{}, cert{}, key{};
  bool insecure_skip_verify = false;
};

struct Request {
  std::string method = "GET";
  std::string path{};  // origin form with an optional query, e.g. "/v1/system/inspect"
  Headers headers{};
  std::string body{};
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names; repeated fields joined by ", "
  std::string body;

  bool ok() const { return status >= 200 && status < 300; }
};

// The exchange did not complete: bad address at connect time, refused, timed out, TLS failure...
// The message names the request and the reason, e.g.
// "GET unix:///tmp/x.sock/v1/system/inspect: Couldn't connect to server".
class HttpError : public std::runtime_error {
 public:
  HttpError(const std::string& message, bool timed_out)
      : std::runtime_error(message), timed_out_(timed_out) {}
  bool timed_out() const noexcept { return timed_out_; }

 private:
  bool timed_out_;
};

// Every call uses its own connection and I/O context, so one Client may be shared by threads.
class Client {
 public:
  // Throws std::invalid_argument naming the address when it cannot be used.
  explicit Client(ClientOptions options);

  // Returns any response the server sends, whatever its status; throws HttpError otherwise.
  Response send(const Request& request) const;
  Response get(const std::string& path, const Headers& headers = {}) const;
  Response put(const std::string& path, std::string body, const Headers& headers = {}) const;
  Response post(const std::string& path, std::string body, const Headers& headers = {}) const;
  // GET `path` with the body of the response, whatever its status, written to `file` (created or
  // truncated) instead of Response::body, which stays empty: for downloads too large to hold in
  // memory. Throws HttpError as send() does, also when the body is longer than `max_body` bytes
  // ("Maximum file size exceeded") or `file` cannot be written; the file then holds what had
  // arrived.
  Response download(const std::string& path, const std::string& file, std::uint64_t max_body,
                    const Headers& headers = {}) const;

  const ClientOptions& options() const { return options_; }

 private:
  Response perform(const Request& request, const std::string* file, std::uint64_t max_body) const;

  enum class Transport { unix_socket, tcp, http, https };

  ClientOptions options_;
  Transport transport_ = Transport::tcp;
  std::string socket_path_;  // unix only
  std::string host_;         // tcp, http(s): a name or an address, IPv6 without brackets
  std::string port_;         // tcp, http(s)
  std::string host_header_;  // host[:port] as sent in Host (the port only when not the default)
  std::string prefix_;       // http(s): put in front of every request path, no trailing slash
};

}  // namespace baetyl::http
