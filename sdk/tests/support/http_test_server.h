#pragma once
// A real HTTP/1.1 server (Boost.Beast) for tests, listening on a Unix socket and on a TCP
// loopback port. It records every request and answers with a canned response (or, when silent,
// never answers). Header-only; every test target that includes it gets its own copy.
//
// Not "baetyl/asio.h": that also pulls in Boost.Asio's SSL support, whose OpenSSL references
// sdk_http_test does not link. The same <utility>-first order works around Boost 1.74 with g++ 12.
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/beast.hpp>

#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace baetyl::testing {

struct RecordedRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  bool has(const std::string& name) const { return headers.count(name) != 0; }
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct CannedResponse {
  unsigned status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Serves every connection on its own coroutine, all on one thread. Each request is recorded
// before the canned response (or, in silent mode, nothing) goes back.
class HttpTestServer {
 public:
  HttpTestServer()
      : dir_(make_temp_dir()),
        unix_acceptor_(io_, unix_endpoint((dir_ / "api.sock").string())),
        tcp_acceptor_(io_, tcp_endpoint(0)) {
    boost::asio::co_spawn(io_, accept_loop(unix_acceptor_), boost::asio::detached);
    boost::asio::co_spawn(io_, accept_loop(tcp_acceptor_), boost::asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }

  ~HttpTestServer() {
    io_.stop();
    thread_.join();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  std::string socket_path() const { return (dir_ / "api.sock").string(); }
  std::string unix_address() const { return "unix://" + socket_path(); }
  std::uint16_t tcp_port() const { return tcp_acceptor_.local_endpoint().port(); }
  std::string tcp_address() const { return "tcp://127.0.0.1:" + std::to_string(tcp_port()); }

  // The response to every following request.
  void respond(unsigned status, std::string body = {},
               std::vector<std::pair<std::string, std::string>> headers = {}) {
    std::lock_guard lock(mutex_);
    response_ = CannedResponse{status, std::move(body), std::move(headers)};
    silent_ = false;
  }
  // Read requests but never answer them.
  void go_silent() {
    std::lock_guard lock(mutex_);
    silent_ = true;
  }

  std::vector<RecordedRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  RecordedRequest last_request() const {
    std::lock_guard lock(mutex_);
    return requests_.empty() ? RecordedRequest{} : requests_.back();
  }
  std::size_t request_count() const {
    std::lock_guard lock(mutex_);
    return requests_.size();
  }

 private:
  using error_code = boost::system::error_code;

  static std::filesystem::path make_temp_dir() {
    std::string pattern = "/tmp/baetyl-http-test-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    return pattern;
  }
  static boost::asio::local::stream_protocol::endpoint unix_endpoint(const std::string& path) {
    return boost::asio::local::stream_protocol::endpoint(path);
  }
  static boost::asio::ip::tcp::endpoint tcp_endpoint(std::uint16_t port) {
    return boost::asio::ip::tcp::endpoint(boost::asio::ip::address_v4::loopback(), port);
  }

  template <class Acceptor>
  boost::asio::awaitable<void> accept_loop(Acceptor& acceptor) {
    namespace asio = boost::asio;
    for (;;) {
      error_code ec;
      auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
    }
  }

  template <class Socket>
  boost::asio::awaitable<void> serve(Socket socket) {
    namespace asio = boost::asio;
    namespace beast = boost::beast;
    namespace bhttp = boost::beast::http;
    beast::flat_buffer buffer;
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      error_code ec;
      co_await bhttp::async_read(socket, buffer, parser,
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      const auto& request = parser.get();

      RecordedRequest record;
      record.method = std::string(request.method_string());
      record.target = std::string(request.target());
      record.body = request.body();
      for (const auto& field : request) {
        std::string name(field.name_string());
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        auto [it, inserted] = record.headers.try_emplace(name, field.value());
        if (!inserted) it->second += ", " + std::string(field.value());
      }
      CannedResponse canned;
      bool silent = false;
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(std::move(record));
        canned = response_;
        silent = silent_;
      }

      if (silent) {
        asio::steady_timer forever(socket.get_executor(), asio::steady_timer::time_point::max());
        co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        co_return;
      }

      bhttp::response<bhttp::string_body> response(static_cast<bhttp::status>(canned.status),
                                                   request.version());
      for (const auto& [name, value] : canned.headers) response.insert(name, value);
      response.body() = std::move(canned.body);
      response.keep_alive(request.keep_alive());
      response.prepare_payload();
      co_await bhttp::async_write(socket, response, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !response.keep_alive()) co_return;
    }
  }

  std::filesystem::path dir_;
  boost::asio::io_context io_;
  boost::asio::local::stream_protocol::acceptor unix_acceptor_;
  boost::asio::ip::tcp::acceptor tcp_acceptor_;
  std::thread thread_;

  mutable std::mutex mutex_;
  CannedResponse response_;
  bool silent_ = false;
  std::vector<RecordedRequest> requests_;
};

// A loopback port nobody listens on (bound a moment ago, then released).
inline std::uint16_t closed_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
  return acceptor.local_endpoint().port();
}

}  // namespace baetyl::testing
