#pragma once
// A real HTTP/1.1 server (Boost.Beast) for tests, listening on a Unix socket and on a TCP
// loopback port, and on request on a TLS port too. It records every request and answers with a
// canned response (or, when silent, never answers). Also a forward proxy for tests. Header-only;
// every test target that includes it gets its own copy.
#include "baetyl/asio.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/beast.hpp>
#include <openssl/ssl.h>

#include <stdlib.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>
#include <optional>
#include <string_view>
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
  std::string server_name;  // TLS only: the SNI the client sent

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
  std::vector<std::string> chunks;  // when not empty: sent with chunked transfer coding instead
};

// PEM files of the TLS port. With client_ca, clients must present a certificate it signed.
struct TlsFiles {
  std::string cert;
  std::string key;
  std::string client_ca{};
  std::string listen_address = "127.0.0.1";
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

  // Also serves HTTPS on tls_port().
  explicit HttpTestServer(const TlsFiles& tls)
      : dir_(make_temp_dir()),
        unix_acceptor_(io_, unix_endpoint((dir_ / "api.sock").string())),
        tcp_acceptor_(io_, tcp_endpoint(0)),
        tls_context_(make_tls_context(tls)),
        tls_acceptor_(std::in_place, io_,
                      boost::asio::ip::tcp::endpoint(
                          boost::asio::ip::make_address(tls.listen_address), 0)) {
    boost::asio::co_spawn(io_, accept_loop(unix_acceptor_), boost::asio::detached);
    boost::asio::co_spawn(io_, accept_loop(tcp_acceptor_), boost::asio::detached);
    boost::asio::co_spawn(io_, accept_tls_loop(), boost::asio::detached);
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
  std::uint16_t tls_port() const { return tls_acceptor_->local_endpoint().port(); }

  // The response to every following request.
  void respond(unsigned status, std::string body = {},
               std::vector<std::pair<std::string, std::string>> headers = {}) {
    std::lock_guard lock(mutex_);
    response_ = CannedResponse{status, std::move(body), std::move(headers)};
    silent_ = false;
  }
  // Answers every following request with a body in these chunks.
  void respond_chunked(unsigned status, std::vector<std::string> chunks) {
    std::lock_guard lock(mutex_);
    response_ = CannedResponse{status, {}, {}, std::move(chunks)};
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
      asio::co_spawn(io_, serve_plain(std::move(socket)), asio::detached);
    }
  }

  static std::optional<boost::asio::ssl::context> make_tls_context(const TlsFiles& tls) {
    namespace ssl = boost::asio::ssl;
    ssl::context context(ssl::context::tls_server);
    context.use_certificate_chain_file(tls.cert);
    context.use_private_key_file(tls.key, ssl::context::pem);
    if (!tls.client_ca.empty()) {
      context.load_verify_file(tls.client_ca);
      context.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    return context;
  }

  boost::asio::awaitable<void> accept_tls_loop() {
    namespace asio = boost::asio;
    for (;;) {
      error_code ec;
      auto socket =
          co_await tls_acceptor_->async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(io_, serve_tls(std::move(socket)), asio::detached);
    }
  }

  template <class Socket>
  boost::asio::awaitable<void> serve_plain(Socket socket) {
    co_await serve(socket, std::string());
  }

  boost::asio::awaitable<void> serve_tls(boost::asio::ip::tcp::socket socket) {
    namespace asio = boost::asio;
    asio::ssl::stream<asio::ip::tcp::socket&> stream(socket, *tls_context_);
    error_code ec;
    co_await stream.async_handshake(asio::ssl::stream_base::server,
                                    asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    co_await serve(stream, server_name(stream.native_handle()));
  }

  static std::string server_name(SSL* ssl) {
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    return name == nullptr ? std::string() : std::string(name);
  }

  template <class Stream>
  static boost::asio::awaitable<void> write_chunked(Stream& stream, const CannedResponse& canned) {
    namespace asio = boost::asio;
    namespace bhttp = boost::beast::http;
    std::string raw = "HTTP/1.1 " + std::to_string(canned.status) + " " +
                      std::string(bhttp::obsolete_reason(static_cast<bhttp::status>(canned.status))) +
                      "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    for (const auto& chunk : canned.chunks) {
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
      raw += size + chunk + "\r\n";
    }
    raw += "0\r\n\r\n";
    error_code ec;
    co_await asio::async_write(stream, asio::buffer(raw),
                               asio::redirect_error(asio::use_awaitable, ec));
  }

  template <class Socket>
  boost::asio::awaitable<void> serve(Socket& socket, std::string server_name) {
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
      record.server_name = server_name;
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

      if (!canned.chunks.empty()) {
        co_await write_chunked(socket, canned);
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
  std::optional<boost::asio::ssl::context> tls_context_;
  std::optional<boost::asio::ip::tcp::acceptor> tls_acceptor_;
  std::thread thread_;

  mutable std::mutex mutex_;
  CannedResponse response_;
  bool silent_ = false;
  std::vector<RecordedRequest> requests_;
};

// A forward proxy on a loopback port: a request in absolute form is passed on to its origin (one
// request per connection), CONNECT opens a tunnel. It records every request it is asked.
class HttpTestProxy {
 public:
  HttpTestProxy()
      : acceptor_(io_, boost::asio::ip::tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0)) {
    boost::asio::co_spawn(io_, accept_loop(), boost::asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~HttpTestProxy() {
    io_.stop();
    thread_.join();
  }
  HttpTestProxy(const HttpTestProxy&) = delete;
  HttpTestProxy& operator=(const HttpTestProxy&) = delete;

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }

  std::vector<RecordedRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  using error_code = boost::system::error_code;
  using tcp = boost::asio::ip::tcp;
  using Socket = std::shared_ptr<tcp::socket>;

  boost::asio::awaitable<void> accept_loop() {
    namespace asio = boost::asio;
    for (;;) {
      error_code ec;
      auto socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(io_, handle(std::make_shared<tcp::socket>(std::move(socket))),
                     asio::detached);
    }
  }

  // "address:port" of a CONNECT target or of an absolute URL's authority; names are not looked up.
  static std::optional<tcp::endpoint> endpoint_of(std::string_view authority) {
    const auto colon = authority.rfind(':');
    error_code ec;
    const auto address = boost::asio::ip::make_address(std::string(authority.substr(0, colon)), ec);
    if (ec || colon == std::string_view::npos) return std::nullopt;
    const auto port = static_cast<std::uint16_t>(std::stoi(std::string(authority.substr(colon + 1))));
    return tcp::endpoint(address, port);
  }

  void record(const boost::beast::http::request<boost::beast::http::string_body>& request) {
    RecordedRequest record;
    record.method = std::string(request.method_string());
    record.target = std::string(request.target());
    record.body = request.body();
    for (const auto& field : request) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      record.headers[name] = std::string(field.value());
    }
    std::lock_guard lock(mutex_);
    requests_.push_back(std::move(record));
  }

  boost::asio::awaitable<void> handle(Socket client) {
    namespace asio = boost::asio;
    namespace bhttp = boost::beast::http;
    boost::beast::flat_buffer buffer;
    bhttp::request_parser<bhttp::string_body> parser;
    error_code ec;
    co_await bhttp::async_read(*client, buffer, parser,
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    auto request = parser.release();
    record(request);

    auto upstream = std::make_shared<tcp::socket>(io_);
    if (request.method() == bhttp::verb::connect) {
      const auto endpoint =
        endpoint_of(std::string_view(request.target().data(), request.target().size()));
      if (!endpoint) co_return;
      co_await upstream->async_connect(*endpoint, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      static constexpr std::string_view established = "HTTP/1.1 200 Connection established\r\n\r\n";
      co_await asio::async_write(*client, asio::buffer(established),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(io_, pipe(client, upstream), asio::detached);
      asio::co_spawn(io_, pipe(upstream, client), asio::detached);
      co_return;
    }

    std::string_view target(request.target().data(), request.target().size());
    if (!target.starts_with("http://")) co_return;
    target.remove_prefix(7);
    const auto slash = target.find('/');
    const auto endpoint = endpoint_of(target.substr(0, slash));
    if (!endpoint) co_return;
    co_await upstream->async_connect(*endpoint, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    request.target(slash == std::string_view::npos ? "/" : std::string(target.substr(slash)));
    request.erase(bhttp::field::proxy_authorization);
    request.keep_alive(false);
    co_await bhttp::async_write(*upstream, request, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    boost::beast::flat_buffer upstream_buffer;
    bhttp::response_parser<bhttp::string_body> response;
    response.body_limit(boost::none);
    co_await bhttp::async_read(*upstream, upstream_buffer, response,
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    co_await bhttp::async_write(*client, response.get(),
                                asio::redirect_error(asio::use_awaitable, ec));
  }

  static boost::asio::awaitable<void> pipe(Socket from, Socket to) {
    namespace asio = boost::asio;
    std::array<char, 16384> data;
    for (;;) {
      error_code ec;
      const std::size_t n = co_await from->async_read_some(
          asio::buffer(data), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      co_await asio::async_write(*to, asio::buffer(data.data(), n),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
    }
    error_code ignored;
    from->close(ignored);
    to->close(ignored);
  }

  boost::asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  mutable std::mutex mutex_;
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
