#include "stream.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

namespace baetyl::hub {
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using TlsSocket = asio::ssl::stream<Tcp::socket>;

const std::string& Stream::peer_common_name() const {
  static const std::string none;
  return none;
}

namespace {

auto token(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

template <class Socket>
std::string endpoint_string(const Socket& socket) {
  error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) return "?";
  std::string address = ep.address().to_string();
  if (ep.address().is_v6()) address = "[" + address + "]";
  return address + ":" + std::to_string(ep.port());
}

std::string verified_common_name(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return {};
  std::string cn;
  if (SSL_get_verify_result(ssl) == X509_V_OK) {
    char buffer[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buffer,
                                      sizeof buffer);
    if (n > 0) cn.assign(buffer, static_cast<std::size_t>(n));
  }
  X509_free(cert);
  return cn;
}

class TcpStream final : public Stream {
 public:
  explicit TcpStream(PlainSocket socket) : socket_(std::move(socket)) {
    remote = endpoint_string(socket_);
    error_code ec;
    socket_.non_blocking(true, ec);
  }
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer b, error_code& ec) override {
    co_return co_await socket_.async_read_some(b, token(ec));
  }
  asio::awaitable<void> write(asio::const_buffer b, error_code& ec) override {
    co_await asio::async_write(socket_, b, token(ec));
  }
  int tcp_handle() override { return socket_.native_handle(); }
  PlainSocket* tcp_socket() override { return &socket_; }
  void close() override {
    error_code ec;
    socket_.shutdown(Tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

 private:
  PlainSocket socket_;
};

class TlsStream final : public Stream {
 public:
  TlsStream(Tcp::socket socket, asio::ssl::context& tls) : stream_(std::move(socket), tls) {
    remote = endpoint_string(stream_.next_layer());
  }
  asio::awaitable<void> handshake() override {
    co_await stream_.async_handshake(asio::ssl::stream_base::server, asio::use_awaitable);
    common_name_ = verified_common_name(stream_.native_handle());
  }
  const std::string& peer_common_name() const override { return common_name_; }
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer b, error_code& ec) override {
    co_return co_await stream_.async_read_some(b, token(ec));
  }
  asio::awaitable<void> write(asio::const_buffer b, error_code& ec) override {
    co_await asio::async_write(stream_, b, token(ec));
  }
  void close() override {
    error_code ec;
    stream_.next_layer().shutdown(Tcp::socket::shutdown_both, ec);
    stream_.next_layer().close(ec);
  }

 private:
  TlsSocket stream_;
  std::string common_name_;
};

template <class Next>
class WebSocketStream final : public Stream {
 public:
  template <class... Args>
  explicit WebSocketStream(std::string path, Args&&... args)
      : ws_(std::forward<Args>(args)...), path_(std::move(path)) {
    remote = endpoint_string(beast::get_lowest_layer(ws_));
  }

  asio::awaitable<void> handshake() override {
    if constexpr (std::is_same_v<Next, TlsSocket>) {
      co_await ws_.next_layer().async_handshake(asio::ssl::stream_base::server,
                                                asio::use_awaitable);
      common_name_ = verified_common_name(ws_.next_layer().native_handle());
    }
    const std::string& path = path_;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    co_await http::async_read(ws_.next_layer(), buffer, request, asio::use_awaitable);
    std::string target(request.target());
    if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
    if (!websocket::is_upgrade(request) || target != path) {
      http::response<http::string_body> response{http::status::not_found, request.version()};
      response.set(http::field::content_type, "text/plain");
      response.body() = "not found\n";
      response.prepare_payload();
      error_code ec;
      co_await http::async_write(ws_.next_layer(), response, token(ec));
      throw boost::system::system_error(asio::error::connection_refused,
                                        "websocket: wrong path or no upgrade: " + target);
    }
    // MQTT over WebSocket uses the subprotocol "mqtt" (3.1.1) or "mqttv3.1" (3.1).
    std::string protocol;
    std::string offered(request[http::field::sec_websocket_protocol]);
    for (std::size_t pos = 0; pos < offered.size();) {
      std::size_t end = offered.find(',', pos);
      if (end == std::string::npos) end = offered.size();
      std::string item = offered.substr(pos, end - pos);
      item.erase(0, item.find_first_not_of(' '));
      item.erase(item.find_last_not_of(' ') + 1);
      if (item == "mqtt" || item == "mqttv3.1") {
        protocol = item;
        break;
      }
      pos = end + 1;
    }
    ws_.set_option(websocket::stream_base::decorator([protocol](websocket::response_type& res) {
      if (!protocol.empty()) res.set(http::field::sec_websocket_protocol, protocol);
    }));
    ws_.binary(true);
    co_await ws_.async_accept(request, asio::use_awaitable);
  }

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer b, error_code& ec) override {
    co_return co_await ws_.async_read_some(b, token(ec));
  }
  asio::awaitable<void> write(asio::const_buffer b, error_code& ec) override {
    co_await ws_.async_write(b, token(ec));
  }
  void close() override {
    error_code ec;
    auto& socket = beast::get_lowest_layer(ws_);
    socket.shutdown(Tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }
  const std::string& peer_common_name() const override { return common_name_; }

 private:
  websocket::stream<Next> ws_;
  std::string path_;
  std::string common_name_;  // wss
};

}  // namespace

std::unique_ptr<Stream> make_stream(PlainSocket plain, const std::string& scheme,
                                    asio::ssl::context* tls, const std::string& path) {
  if (scheme == "tcp") return std::make_unique<TcpStream>(std::move(plain));
  // TLS and WebSocket streams take the socket as asio::ip::tcp::socket.
  error_code ec;
  const auto protocol = plain.local_endpoint(ec).protocol();
  Tcp::socket socket(plain.get_executor());
  if (plain.is_open()) socket.assign(protocol, plain.release(ec), ec);
  if (scheme == "ssl") return std::make_unique<TlsStream>(std::move(socket), *tls);
  if (scheme == "ws")
    return std::make_unique<WebSocketStream<Tcp::socket>>(path, std::move(socket));
  return std::make_unique<WebSocketStream<TlsSocket>>(path, std::move(socket), *tls);
}

std::shared_ptr<asio::ssl::context> make_server_tls_context(const std::string& cert,
                                                            const std::string& key,
                                                            const std::string& ca) {
  auto tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  auto load = [](const std::string& what, const std::string& file, auto&& fn) {
    error_code ec;
    fn(ec);
    if (ec) throw std::runtime_error("certificate." + what + " '" + file + "': " + ec.message());
  };
  load("cert", cert, [&](error_code& ec) { tls->use_certificate_chain_file(cert, ec); });
  load("key", key,
       [&](error_code& ec) { tls->use_private_key_file(key, asio::ssl::context::pem, ec); });
  if (!ca.empty()) {
    load("ca", ca, [&](error_code& ec) { tls->load_verify_file(ca, ec); });
    // A client certificate is optional; one that is presented must verify against the CA.
    tls->set_verify_mode(asio::ssl::verify_peer);
  }
  return tls;
}

}  // namespace baetyl::hub
