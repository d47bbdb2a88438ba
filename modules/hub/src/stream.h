#pragma once
// The byte streams a client connects over: TCP, TLS, WebSocket and WebSocket over TLS.
#include <memory>
#include <string>

#include "baetyl/asio.h"

namespace baetyl::hub {

class Stream {
 public:
  virtual ~Stream() = default;
  virtual asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer, error_code& ec) = 0;
  virtual asio::awaitable<void> write(asio::const_buffer buffer, error_code& ec) = 0;
  // Closes the socket; pending operations complete with an error. Call on the stream's strand.
  virtual void close() = 0;
  // The socket's descriptor for a plain TCP stream, which another thread may send on while the
  // stream's own strand does not write (see Connection); -1 for TLS and WebSocket.
  virtual int tcp_handle() { return -1; }
  // The socket of a plain TCP stream (non-blocking: a read returns would_block when nothing is
  // there), which the connection reads without a coroutine; null for TLS and WebSocket.
  virtual asio::basic_stream_socket<asio::ip::tcp, asio::io_context::executor_type>* tcp_socket() {
    return nullptr;
  }
  // The TLS and WebSocket handshakes; throws on failure. Nothing to do for plain TCP.
  virtual asio::awaitable<void> handshake() { co_return; }

  // The CN of a verified client certificate, else empty. (Kept by the TLS streams only: a plain
  // TCP connection does not carry the string.)
  virtual const std::string& peer_common_name() const;

  std::string remote;  // peer address for logs
};

using Tcp = asio::ip::tcp;
// A TCP socket on an io_context's own executor: asio::ip::tcp::socket holds an any_io_executor,
// larger, and copied into each of its waits.
using PlainSocket = asio::basic_stream_socket<Tcp, asio::io_context::executor_type>;

// A server stream of the listener's scheme (tcp, ssl, ws, wss); `tls` is required for ssl and
// wss. For ws and wss, handshake() reads the HTTP upgrade request, checks that its path is `path`
// and accepts with the subprotocol "mqtt".
std::unique_ptr<Stream> make_stream(PlainSocket socket, const std::string& scheme,
                                    asio::ssl::context* tls, const std::string& path);

// A TLS server context from the certificate keys; client certificates are verified against `ca`
// when a client presents one. Throws std::runtime_error naming the file.
std::shared_ptr<asio::ssl::context> make_server_tls_context(const std::string& cert,
                                                            const std::string& key,
                                                            const std::string& ca);

}  // namespace baetyl::hub
