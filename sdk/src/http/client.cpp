#include "baetyl/http/client.h"

#include "address.h"
#include "baetyl/asio.h"
#include "baetyl/asio_deadline.h"
#include "proxy.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <stdlib.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <future>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

namespace baetyl::http {
namespace {

using detail::Authority;
using detail::bad_address;
using detail::Failure;
using detail::has_control_or_space;
using detail::host_header;
using detail::ip_address;
using detail::lower;
using detail::parse_authority;
using detail::proxy_for;
using detail::url_host;

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using unix_stream = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;
using OutgoingRequest = bhttp::request<bhttp::string_body>;
using TlsStream = ssl::stream<tcp::socket&>;

struct TimedOut {};

// Where the body of the final response goes: Response::body, or a file (Client::download).
struct BodyTarget {
  const std::string* file = nullptr;
  std::uint64_t limit = 0;  // bytes, for a file
};

bool valid_token(std::string_view text) {
  // RFC 9110 tchar.
  static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || extra.find(static_cast<char>(c)) != std::string_view::npos;
  });
}

// ---- name resolution ---------------------------------------------------------------------------

// getaddrinfo cannot be cancelled, so a name is resolved on a thread of its own, which is left
// to finish alone when the deadline comes first. Addresses need no thread.
tcp::resolver::results_type resolve(const std::string& host, const std::string& port,
                                    std::optional<Clock::time_point> deadline,
                                    const char* failure) {
  if (const auto address = ip_address(host)) {
    return tcp::resolver::results_type::create(
        tcp::endpoint(*address, static_cast<unsigned short>(std::stoi(port))), host, port);
  }
  auto promise = std::make_shared<std::promise<tcp::resolver::results_type>>();
  auto future = promise->get_future();
  std::thread([promise, host, port, failure] {
    asio::io_context io;
    tcp::resolver resolver(io);
    error_code ec;
    auto results = resolver.resolve(host, port, ec);
    if (ec) {
      promise->set_exception(std::make_exception_ptr(Failure(failure, ec)));
    } else {
      promise->set_value(std::move(results));
    }
  }).detach();
  if (deadline && future.wait_until(*deadline) == std::future_status::timeout) throw TimedOut{};
  return future.get();
}

// ---- the exchange ------------------------------------------------------------------------------

// Where and how a request goes: a Unix socket, or TCP endpoints (the server's or the proxy's),
// with TLS and an optional CONNECT tunnel first for https.
struct Route {
  std::string socket_path;
  tcp::resolver::results_type endpoints;
  bool tls = false;
  std::string tls_host;        // for SNI and host-name verification
  std::string tunnel_target;   // host:port of a CONNECT through a proxy, or empty
  std::string proxy_authorization;
};

// The sockets of an exchange, and the TLS stream over its TCP socket.
struct Connection : ExchangeSockets {
  using ExchangeSockets::ExchangeSockets;
  std::optional<TlsStream> tls;
};

auto redirect(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

asio::awaitable<void> connect_unix(unix_stream::socket& socket, const std::string& path) {
  error_code ec;
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    throw Failure("Couldn't connect to server", "socket path too long");
  }
  co_await socket.async_connect(unix_stream::endpoint(path), redirect(ec));
  if (ec) throw Failure("Couldn't connect to server", ec);
}

asio::awaitable<void> connect_tcp(tcp::socket& socket,
                                  const tcp::resolver::results_type& endpoints) {
  error_code ec;
  co_await asio::async_connect(socket, endpoints, redirect(ec));
  if (ec) throw Failure("Couldn't connect to server", ec);
  socket.set_option(tcp::no_delay(true), ec);
}

asio::awaitable<void> open_tunnel(tcp::socket& socket, const Route& route) {
  bhttp::request<bhttp::empty_body> connect(bhttp::verb::connect, route.tunnel_target, 11);
  connect.set(bhttp::field::host, route.tunnel_target);
  if (!route.proxy_authorization.empty()) {
    connect.set(bhttp::field::proxy_authorization, route.proxy_authorization);
  }
  error_code ec;
  co_await bhttp::async_write(socket, connect, redirect(ec));
  if (ec) throw Failure("Failed sending data to the peer", ec);

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::empty_body> parser;
  parser.skip(true);  // a successful CONNECT answer has no body, whatever its headers say
  co_await bhttp::async_read(socket, buffer, parser, redirect(ec));
  if (ec) throw Failure("Failure when receiving data from the peer", ec);
  const unsigned status = parser.get().result_int();
  if (status / 100 != 2) {
    throw Failure("CONNECT tunnel failed, response " + std::to_string(status), "");
  }
}

asio::awaitable<void> handshake(TlsStream& stream, const std::string& host, bool verify) {
  SSL* ssl = stream.native_handle();
  const bool is_address = ip_address(host).has_value();
  if (!is_address) SSL_set_tlsext_host_name(ssl, host.c_str());  // no SNI for addresses (RFC 6066)
  if (verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    const int set = is_address ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                               : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (set != 1) throw Failure("SSL connect error", "cannot verify host '" + host + "'");
  }
  error_code ec;
  co_await stream.async_handshake(ssl::stream_base::client, redirect(ec));
  if (!ec) co_return;
  if (const long result = SSL_get_verify_result(ssl); verify && result != X509_V_OK) {
    throw Failure("SSL peer certificate or SSH remote key was not OK",
                  std::string("SSL certificate problem: ") + X509_verify_cert_error_string(result));
  }
  throw Failure("SSL connect error", ec);
}

std::string receive_failure(const error_code& ec) {
  if (ec == bhttp::error::end_of_stream) return "Server returned nothing (no headers, no data)";
  if (ec == bhttp::error::partial_message) return "Transferred a partial file";
  if (ec == bhttp::error::body_limit) return "Maximum file size exceeded";
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_version).category()) {
    return "Weird server reply";
  }
  return "Failure when receiving data from the peer";
}

std::string_view std_view(beast::string_view text) { return {text.data(), text.size()}; }

template <class Body>
Response to_response(const bhttp::response<Body>& message) {
  Response response;
  response.status = static_cast<long>(message.result_int());
  if constexpr (std::is_same_v<Body, bhttp::string_body>) response.body = message.body();
  for (const auto& field : message) {
    const std::string_view value = std_view(field.value());
    auto [it, inserted] = response.headers.try_emplace(lower(std_view(field.name_string())), value);
    if (!inserted) it->second.append(", ").append(value);
  }
  return response;
}

bool is_interim(unsigned status) { return status / 100 == 1 && status != 101; }

// Reads responses until one is not interim (1xx); `prepare` sets up each parser's body.
template <class Body, class Stream, class Prepare>
asio::awaitable<Response> read_final(Stream& stream, const OutgoingRequest& request,
                                     std::uint64_t body_limit, Prepare prepare) {
  beast::flat_buffer buffer;
  error_code ec;
  auto too_large = [&] {
    return Failure(receive_failure(bhttp::error::body_limit),
                   "the body is larger than " + std::to_string(body_limit) + " bytes");
  };
  for (;;) {
    bhttp::response_parser<Body> parser;
    parser.header_limit(1024 * 1024);
    // A number, never boost::none: Beast 1.74 compares a Content-Length with boost::none as
    // larger, and when it reads a whole message in one go it lets a Content-Length past the
    // limit; so the header is read first and the announced length checked here too.
    parser.body_limit(body_limit);
    prepare(parser);
    if (request.method() == bhttp::verb::head) parser.skip(true);
    co_await bhttp::async_read_header(stream, buffer, parser, redirect(ec));
    if (!ec && parser.content_length() && *parser.content_length() > body_limit) {
      throw too_large();
    }
    if (!ec && !parser.is_done()) co_await bhttp::async_read(stream, buffer, parser, redirect(ec));
    if (ec == ssl::error::stream_truncated && parser.is_header_done()) {
      parser.put_eof(ec);  // a TLS peer that closed without close_notify ends a body read to EOF
    }
    if (ec == bhttp::error::body_limit) throw too_large();
    if (ec) throw Failure(receive_failure(ec), ec);
    if (!is_interim(parser.get().result_int())) co_return to_response(parser.get());
  }
}

template <class Stream>
asio::awaitable<Response> exchange_over(Stream& stream, const OutgoingRequest& request,
                                        const BodyTarget& target) {
  error_code ec;
  co_await bhttp::async_write(stream, request, redirect(ec));
  if (ec) throw Failure("Failed sending data to the peer", ec);

  if (target.file == nullptr) {
    co_return co_await read_final<bhttp::string_body>(
        stream, request, std::numeric_limits<std::uint64_t>::max(), [](auto&) {});
  }
  co_return co_await read_final<bhttp::file_body>(stream, request, target.limit, [&](auto& parser) {
    error_code open_error;
    parser.get().body().open(target.file->c_str(), beast::file_mode::write, open_error);
    if (open_error) {
      throw Failure("Failed writing received data to disk/application",
                    *target.file + ": " + open_error.message());
    }
  });
}

asio::awaitable<Response> exchange(Connection& connection, const Route& route,
                                   const OutgoingRequest& request, const BodyTarget& target,
                                   ssl::context* tls_context, bool verify) {
  if (!route.socket_path.empty()) {
    co_await connect_unix(connection.unix_socket, route.socket_path);
    co_return co_await exchange_over(connection.unix_socket, request, target);
  }
  co_await connect_tcp(connection.tcp_socket, route.endpoints);
  if (!route.tls) co_return co_await exchange_over(connection.tcp_socket, request, target);

  if (!route.tunnel_target.empty()) co_await open_tunnel(connection.tcp_socket, route);
  TlsStream& stream = connection.tls.emplace(connection.tcp_socket, *tls_context);
  co_await handshake(stream, route.tls_host, verify);
  co_return co_await exchange_over(stream, request, target);
}

// Runs the exchange on a private I/O context until it ends or the deadline passes; at the
// deadline the sockets are closed and the aborted exchange is left to unwind.
Response run_exchange(const Route& route, const OutgoingRequest& request, const BodyTarget& target,
                      ssl::context* tls_context, bool verify,
                      std::optional<Clock::time_point> deadline) {
  asio::io_context io(1);
  Connection connection(io);
  auto response =
      run_with_deadline(io, exchange(connection, route, request, target, tls_context, verify),
                        deadline, [&] { connection.close(); });
  if (!response) throw TimedOut{};
  return std::move(*response);
}

ssl::context make_tls_context(const ClientOptions& options) {
  ssl::context context(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
  error_code ec;
  if (options.insecure_skip_verify) {
    context.set_verify_mode(ssl::verify_none);
  } else {
    context.set_verify_mode(ssl::verify_peer);
    if (options.ca.empty()) {
      context.set_default_verify_paths(ec);
    } else {
      context.load_verify_file(options.ca, ec);
    }
    if (ec) {
      throw Failure("Problem with the SSL CA cert (path? access rights?)",
                    options.ca + ": " + ec.message());
    }
  }
  if (!options.cert.empty()) {
    context.use_certificate_chain_file(options.cert, ec);
    if (!ec) {
      // Like curl, a certificate file without a key file is expected to hold the key too.
      const std::string& key = options.key.empty() ? options.cert : options.key;
      context.use_private_key_file(key, ssl::context::pem, ec);
    }
    if (ec) throw Failure("Problem with the local SSL certificate", ec);
  }
  return context;
}

OutgoingRequest make_request(const std::string& method, std::string target,
                             const std::string& host, const Request& request,
                             const std::string& proxy_authorization) {
  OutgoingRequest outgoing;
  outgoing.method_string(method);
  outgoing.target(target);
  outgoing.version(11);
  bool has_host = false, has_accept = false;
  for (const auto& [name, value] : request.headers) {
    const std::string key = lower(name);
    has_host = has_host || key == "host";
    has_accept = has_accept || key == "accept";
    outgoing.insert(name, value);
  }
  if (!has_host) outgoing.set(bhttp::field::host, host);
  if (!has_accept) outgoing.set(bhttp::field::accept, "*/*");
  if (!proxy_authorization.empty()) {
    outgoing.set(bhttp::field::proxy_authorization, proxy_authorization);
  }
  const bool has_payload = method == "PUT" || method == "POST" || method == "PATCH";
  if (!request.body.empty() || has_payload) {
    outgoing.body() = request.body;
    outgoing.content_length(request.body.size());  // 0 for an empty PUT
  }
  return outgoing;
}

void validate_headers(const Headers& headers) {
  for (const auto& [name, value] : headers) {
    if (!valid_token(name) ||
        value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      throw std::invalid_argument("invalid HTTP header '" + name + "'");
    }
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
    host_header_ = "localhost";
  } else if (scheme == "tcp") {
    auto authority = rest;
    if (authority.ends_with('/')) authority.remove_suffix(1);
    if (authority.find('/') != std::string_view::npos) {
      bad_address(address, "a tcp address takes no path");
    }
    transport_ = Transport::tcp;
    const Authority parsed = parse_authority(address, authority, nullptr);
    host_ = parsed.host;
    port_ = std::to_string(parsed.port);
    host_header_ = host_header(parsed, 80);
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
    const Authority parsed = parse_authority(address, authority, tls ? "443" : "80");
    host_ = parsed.host;
    port_ = std::to_string(parsed.port);
    host_header_ = host_header(parsed, tls ? 443 : 80);
    prefix_ = prefix;
  } else {
    bad_address(address, "unknown scheme '" + scheme + "'");
  }
  if (options_.timeout.count() < 0) bad_address(address, "negative timeout");
}

Response Client::get(const std::string& path, const Headers& headers) const {
  return send(Request{"GET", path, headers, {}});
}

Response Client::put(const std::string& path, std::string body, const Headers& headers) const {
  return send(Request{"PUT", path, headers, std::move(body)});
}

Response Client::post(const std::string& path, std::string body, const Headers& headers) const {
  return send(Request{"POST", path, headers, std::move(body)});
}

Response Client::download(const std::string& path, const std::string& file, std::uint64_t max_body,
                          const Headers& headers) const {
  return perform(Request{"GET", path, headers, {}}, &file, max_body);
}

Response Client::send(const Request& request) const { return perform(request, nullptr, 0); }

Response Client::perform(const Request& request, const std::string* file,
                         std::uint64_t max_body) const {
  const std::string method = request.method.empty() ? "GET" : request.method;
  if (!valid_token(method)) throw std::invalid_argument("invalid HTTP method '" + method + "'");
  std::string path = request.path;
  if (path.empty() || path.front() != '/') path.insert(path.begin(), '/');
  if (has_control_or_space(path)) {
    throw std::invalid_argument("invalid character in HTTP request path '" + path + "'");
  }
  validate_headers(request.headers);

  std::string shown_address = options_.address;
  while (shown_address.ends_with('/')) shown_address.pop_back();
  const std::string what = method + " " + shown_address + path;

  std::optional<Clock::time_point> deadline;
  if (options_.timeout.count() > 0) deadline = Clock::now() + options_.timeout;

  try {
    const bool tls = transport_ == Transport::https;
    Route route;
    route.tls = tls;
    std::string target = prefix_ + path;
    std::string proxy_authorization;
    if (transport_ == Transport::unix_socket) {
      route.socket_path = socket_path_;
    } else if (const auto proxy = transport_ == Transport::tcp ? std::nullopt
                                                               : proxy_for(tls, host_)) {
      route.endpoints =
          resolve(proxy->host, proxy->port, deadline, "Couldn't resolve proxy name");
      if (tls) {
        route.tunnel_target = url_host(host_) + ":" + port_;
        route.proxy_authorization = proxy->authorization;
      } else {
        target = "http://" + host_header_ + target;  // absolute form for the proxy
        proxy_authorization = proxy->authorization;
      }
    } else {
      route.endpoints = resolve(host_, port_, deadline, "Couldn't resolve host name");
    }
    route.tls_host = host_;

    const OutgoingRequest outgoing =
        make_request(method, target, host_header_, request, proxy_authorization);
    std::optional<ssl::context> tls_context;
    if (tls) tls_context.emplace(make_tls_context(options_));
    return run_exchange(route, outgoing, BodyTarget{file, max_body},
                        tls_context ? &*tls_context : nullptr, !options_.insecure_skip_verify,
                        deadline);
  } catch (const TimedOut&) {
    throw HttpError(what + ": Timeout was reached (no response within " +
                        std::to_string(options_.timeout.count()) + " ms)",
                    true);
  } catch (const Failure& e) {
    throw HttpError(what + ": " + e.what(), false);
  } catch (const boost::system::system_error& e) {
    throw HttpError(what + ": " + e.what(), false);
  }
}

}  // namespace baetyl::http
