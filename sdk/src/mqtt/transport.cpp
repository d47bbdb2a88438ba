#include "baetyl/mqtt/transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <charconv>

#include <openssl/err.h>
#include <stdexcept>

namespace baetyl::mqtt {

std::string Endpoint::str() const {
  bool v6 = host.find(':') != std::string::npos;
  return scheme + "://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Endpoint parse_endpoint(const std::string& address) {
  auto invalid = [&](const std::string& why) {
    return std::invalid_argument("invalid address '" + address + "': " + why +
                                 " (expected tcp://host:port or ssl://host:port)");
  };
  auto sep = address.find("://");
  if (sep == std::string::npos) throw invalid("missing scheme");
  Endpoint endpoint;
  endpoint.scheme = address.substr(0, sep);
  if (endpoint.scheme == "tls") endpoint.scheme = "ssl";
  if (endpoint.scheme != "tcp" && endpoint.scheme != "ssl") {
    throw invalid("unsupported scheme '" + endpoint.scheme + "'");
  }
  std::string rest = address.substr(sep + 3);
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    if (slash + 1 != rest.size()) throw invalid("unexpected path");
    rest.resize(slash);
  }
  std::string port_text;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) throw invalid("unterminated IPv6 address");
    endpoint.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') throw invalid("expected ':' after ']'");
      port_text = rest.substr(close + 2);
    }
  } else {
    auto colon = rest.rfind(':');
    endpoint.host = rest.substr(0, colon);
    if (colon != std::string::npos) port_text = rest.substr(colon + 1);
  }
  if (endpoint.host.empty()) throw invalid("missing host");
  if (port_text.empty()) {
    endpoint.port = endpoint.tls() ? 8883 : 1883;
  } else {
    unsigned port = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      throw invalid("bad port '" + port_text + "'");
    }
    endpoint.port = static_cast<std::uint16_t>(port);
  }
  return endpoint;
}

std::shared_ptr<asio::ssl::context> make_client_tls_context(const TlsFiles& files) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1);
  auto load = [&](const std::string& what, const std::string& path, auto&& fn) {
    error_code ec;
    fn(ec);
    if (ec) throw std::runtime_error("cannot load TLS " + what + " '" + path + "': " + ec.message());
  };
  if (files.insecure_skip_verify) {
    ctx->set_verify_mode(asio::ssl::verify_none);
  } else {
    ctx->set_verify_mode(asio::ssl::verify_peer);
    if (files.ca.empty()) {
      ctx->set_default_verify_paths();
    } else {
      load("CA", files.ca, [&](error_code& ec) { ctx->load_verify_file(files.ca, ec); });
    }
  }
  if (!files.cert.empty() || !files.key.empty()) {
    if (files.cert.empty() || files.key.empty()) {
      throw std::runtime_error("TLS client certificate needs both cert and key");
    }
    load("certificate", files.cert,
         [&](error_code& ec) { ctx->use_certificate_chain_file(files.cert, ec); });
    load("key", files.key, [&](error_code& ec) {
      ctx->use_private_key_file(files.key, asio::ssl::context::pem, ec);
    });
  }
  return ctx;
}

Transport::Transport(Tcp socket) : stream_(std::move(socket)) {}
Transport::Transport(Tls stream, std::shared_ptr<asio::ssl::context> tls)
    : stream_(std::move(stream)), tls_(std::move(tls)) {}

std::shared_ptr<Transport> Transport::make_client(asio::any_io_executor executor,
                                                  std::shared_ptr<asio::ssl::context> tls) {
  if (!tls) return std::make_shared<Transport>(Tcp(executor));
  return std::make_shared<Transport>(Tls(Tcp(executor), *tls), tls);
}

asio::awaitable<void> Transport::connect(const Endpoint& endpoint, error_code& ec) {
  auto& tcp = socket();
  resolver_ = std::make_unique<asio::ip::tcp::resolver>(tcp.get_executor());
  auto results = co_await resolver_->async_resolve(
      endpoint.host, std::to_string(endpoint.port), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return;
  co_await asio::async_connect(tcp, results, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return;
  error_code ignored;
  tcp.set_option(asio::ip::tcp::no_delay(true), ignored);

  auto* tls = std::get_if<Tls>(&stream_);
  if (!tls) co_return;
  if (!SSL_set_tlsext_host_name(tls->native_handle(), endpoint.host.c_str())) {
    ec = error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
    co_return;
  }
  if (SSL_CTX_get_verify_mode(tls_->native_handle()) != SSL_VERIFY_NONE) {
    tls->set_verify_callback(asio::ssl::host_name_verification(endpoint.host));
  }
  co_await tls->async_handshake(asio::ssl::stream_base::client,
                                asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<std::size_t> Transport::read_some(asio::mutable_buffer buffer, error_code& ec) {
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  if (auto* tcp = std::get_if<Tcp>(&stream_)) co_return co_await tcp->async_read_some(buffer, token);
  co_return co_await std::get<Tls>(stream_).async_read_some(buffer, token);
}

asio::awaitable<void> Transport::write(asio::const_buffer buffer, error_code& ec) {
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  if (auto* tcp = std::get_if<Tcp>(&stream_)) {
    co_await asio::async_write(*tcp, buffer, token);
  } else {
    co_await asio::async_write(std::get<Tls>(stream_), buffer, token);
  }
}

asio::ip::tcp::socket& Transport::socket() {
  if (auto* tcp = std::get_if<Tcp>(&stream_)) return *tcp;
  return std::get<Tls>(stream_).next_layer();
}

const asio::ip::tcp::socket& Transport::socket() const {
  if (auto* tcp = std::get_if<Tcp>(&stream_)) return *tcp;
  return std::get<Tls>(stream_).next_layer();
}

void Transport::acknowledge_now() {
  auto& s = socket();
  if (!s.is_open()) return;
  // The kernel falls back to delayed acknowledgements on its own, so this is set every time.
  int one = 1;
  ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

void Transport::close() {
  if (resolver_) resolver_->cancel();
  error_code ignored;
  auto& s = socket();
  if (s.is_open()) {
    s.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    s.close(ignored);
  }
}

bool Transport::is_open() const { return socket().is_open(); }

std::string Transport::remote_address() const {
  error_code ec;
  auto endpoint = socket().remote_endpoint(ec);
  if (ec) return "unknown";
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

}  // namespace baetyl::mqtt
