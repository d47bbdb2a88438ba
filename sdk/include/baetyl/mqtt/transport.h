#pragma once
// A byte stream for MQTT: plain TCP or TLS over TCP, with coroutine read/write.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "baetyl/asio.h"

namespace baetyl::mqtt {

// An endpoint such as `tcp://127.0.0.1:1883` or `ssl://hub.example.com:8883`.
struct Endpoint {
  std::string scheme;  // "tcp" or "ssl"
  std::string host;
  std::uint16_t port = 0;

  bool tls() const { return scheme == "ssl"; }
  std::string str() const;
};

// Parses `tcp://host:port`, `ssl://host:port` (`tls://` is taken as `ssl://`), IPv6 hosts in
// brackets. A missing port means 1883 for tcp and 8883 for ssl. Throws std::invalid_argument with
// a message naming the address.
Endpoint parse_endpoint(const std::string& address);

// TLS material of a client or server, as in the configuration keys ca, cert, key.
struct TlsFiles {
  std::string ca;
  std::string cert;
  std::string key;
  bool insecure_skip_verify = false;  // client only: accept any server certificate
};

// Builds a client TLS context: verifies the server against `ca` (or the system store when empty)
// unless insecure, and presents cert/key when given. Throws std::runtime_error naming the file.
std::shared_ptr<asio::ssl::context> make_client_tls_context(const TlsFiles& files);

class Transport {
 public:
  using Tcp = asio::ip::tcp::socket;
  using Tls = asio::ssl::stream<asio::ip::tcp::socket>;

  explicit Transport(Tcp socket);
  Transport(Tls stream, std::shared_ptr<asio::ssl::context> tls);

  // An unconnected client transport; plain TCP when `tls` is null.
  static std::shared_ptr<Transport> make_client(asio::any_io_executor executor,
                                                std::shared_ptr<asio::ssl::context> tls);

  // Resolves and connects to `endpoint`; for TLS also performs the handshake (with SNI, and host
  // name verification unless the context is insecure). close() from another coroutine aborts it.
  asio::awaitable<void> connect(const Endpoint& endpoint, error_code& ec);

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer, error_code& ec);
  asio::awaitable<void> write(asio::const_buffer buffer, error_code& ec);

  // Has the kernel acknowledge what was read at once (TCP_QUICKACK) instead of when its delayed
  // ACK timer fires (about 40 ms later): a peer that writes with Nagle's algorithm, as mosquitto
  // does, holds its next small packets back until it has that acknowledgement. For when nothing
  // is about to be written that would carry it.
  void acknowledge_now();

  // Closes the underlying socket; pending operations complete with an error. Idempotent.
  void close();
  bool is_open() const;
  std::string remote_address() const;

 private:
  asio::ip::tcp::socket& socket();
  const asio::ip::tcp::socket& socket() const;

  std::variant<Tcp, Tls> stream_;
  std::shared_ptr<asio::ssl::context> tls_;
  std::unique_ptr<asio::ip::tcp::resolver> resolver_;
};

}  // namespace baetyl::mqtt
