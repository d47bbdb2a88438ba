#include "api/api_server.h"

#include "baetyl/asio_core.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

#include "api/api_router.h"
#include "api/worker_pool.h"

namespace baetyl::master {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace fs = std::filesystem;
using asio::ip::tcp;
using asio::local::stream_protocol;
using namespace std::chrono_literals;

// Backend calls in flight at once, and waiting for a thread; beyond that requests get 503.
constexpr std::size_t kMaxWorkers = 16;
constexpr std::size_t kMaxQueued = 256;
// After refusing a request mid-body, what is still read (and dropped) before closing, so that
// the client sees the response rather than a connection reset.
constexpr auto kDrainTime = 1s;
constexpr std::size_t kMaxDrainBytes = 16 << 20;
constexpr std::size_t kMaxLoggedBody = 200;

struct ListenAddress {
  bool unix_socket = false;
  std::string path;  // unix: absolute
  std::string host;  // tcp
  std::string port;  // tcp
};

[[noreturn]] void bad_address(const std::string& address, const std::string& reason) {
  throw std::runtime_error("invalid API address '" + address + "': " + reason);
}

ListenAddress parse_address(const std::string& address) {
  const auto sep = address.find("://");
  if (sep == std::string::npos) bad_address(address, "expected unix://path or tcp://host:port");
  const std::string scheme = address.substr(0, sep);
  const std::string rest = address.substr(sep + 3);
  ListenAddress out;
  if (scheme == "unix") {
    if (rest.empty()) bad_address(address, "missing socket path");
    out.unix_socket = true;
    out.path = fs::absolute(rest).lexically_normal().string();
    return out;
  }
  if (scheme != "tcp") bad_address(address, "unknown scheme '" + scheme + "'");
  std::string authority = rest;
  if (!authority.empty() && authority.back() == '/') authority.pop_back();
  std::size_t colon;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string::npos) bad_address(address, "unterminated '['");
    out.host = authority.substr(1, close - 1);
    colon = close + 1;
    if (colon >= authority.size() || authority[colon] != ':') bad_address(address, "missing port");
  } else {
    colon = authority.rfind(':');
    if (colon == std::string::npos) bad_address(address, "missing port");
    out.host = authority.substr(0, colon);
  }
  out.port = authority.substr(colon + 1);
  if (out.host.empty()) bad_address(address, "missing host");
  if (out.port.empty() || out.port.size() > 5 ||
      !std::all_of(out.port.begin(), out.port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoul(out.port) > 65535) {
    bad_address(address, "invalid port '" + out.port + "'");
  }
  return out;
}

std::string describe(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return "tcp://" + host + ":" + std::to_string(endpoint.port());
}

std::string describe_peer(const stream_protocol::socket&) { return "unix"; }
std::string describe_peer(const tcp::socket& socket) {
  error_code ec;
  const auto endpoint = socket.remote_endpoint(ec);
  if (ec) return "tcp";
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

std::string shorten(std::string_view text) {
  if (text.size() <= kMaxLoggedBody) return std::string(text);
  return std::string(text.substr(0, kMaxLoggedBody)) + "...";
}

// Errors that just mean the peer went away or stopped talking: closed quietly.
bool is_disconnect(const error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::operation_aborted || ec == beast::error::timeout ||
         ec == bhttp::error::partial_message;
}

}  // namespace

struct ApiServer::Impl {
  struct Running {
    asio::io_context io{1};  // declared first: outlives the acceptors
    std::optional<tcp::acceptor> tcp_acceptor;
    std::optional<stream_protocol::acceptor> unix_acceptor;
    std::thread thread;
    std::string socket_path;  // the file to remove on stop
    dev_t socket_dev = 0;
    ino_t socket_ino = 0;
  };

  Impl(ApiServerOptions options_in, ApiBackend& backend_in,
       std::shared_ptr<spdlog::logger> logger_in)
      : options(std::move(options_in)),
        backend(backend_in),
        logger(logger_in ? std::move(logger_in) : spdlog::default_logger()) {}

  void listen(Running& running);
  void listen_unix(Running& running, const std::string& path);
  void listen_tcp(Running& running, const ListenAddress& address);
  void run_io(asio::io_context& io);
  void remove_socket_file(const Running& running);

  template <class Protocol>
  asio::awaitable<void> accept_loop(asio::basic_socket_acceptor<Protocol>& acceptor);
  template <class Protocol>
  asio::awaitable<void> serve(asio::basic_stream_socket<Protocol> socket);
  template <class Stream>
  asio::awaitable<void> refuse(Stream& stream, const error_code& ec, const std::string& peer);
  asio::awaitable<ApiReply> dispatch(ApiRequest request);
  void log_exception(std::exception_ptr error, const char* what);

  template <class Stream>
  void arm(Stream& stream) const {
    if (options.timeout.count() > 0) {
      stream.expires_after(options.timeout);
    } else {
      stream.expires_never();
    }
  }

  const ApiServerOptions options;
  ApiBackend& backend;
  const std::shared_ptr<spdlog::logger> logger;
  WorkerPool pool{kMaxWorkers, kMaxQueued};

  std::mutex lifecycle_mutex;  // start() and stop()
  std::unique_ptr<Running> running;
  mutable std::mutex address_mutex;
  std::string address;

  // Open connections by id, each with the way to close it. Touched by the I/O thread only, and
  // by stop() once that thread has ended.
  std::unordered_map<std::uint64_t, std::function<void()>> connections;
  std::uint64_t next_connection = 0;
};

void ApiServer::Impl::listen(Running& running) {
  const ListenAddress parsed = parse_address(options.address);
  if (parsed.unix_socket) {
    listen_unix(running, parsed.path);
  } else {
    listen_tcp(running, parsed);
  }
}

void ApiServer::Impl::listen_unix(Running& running, const std::string& path) {
  const fs::path file(path);
  std::error_code fs_ec;
  if (file.has_parent_path()) fs::create_directories(file.parent_path(), fs_ec);

  const auto status = fs::symlink_status(file, fs_ec);
  if (fs::exists(status)) {
    if (!fs::is_socket(status)) throw std::runtime_error(path + " exists and is not a socket");
    stream_protocol::socket probe(running.io);
    error_code ec;
    probe.connect(stream_protocol::endpoint(path), ec);
    if (!ec) throw std::runtime_error("another server is listening on " + path);
    // Only a refusal proves nobody owns it any more.
    if (ec != asio::error::connection_refused) {
      throw std::runtime_error("cannot check the existing socket " + path + ": " + ec.message());
    }
    logger->info("API: replacing the stale socket file {} ({})", path, ec.message());
    if (!fs::remove(file, fs_ec) && fs_ec) {
      throw std::runtime_error("cannot remove the stale socket " + path + ": " + fs_ec.message());
    }
  }

  auto& acceptor = running.unix_acceptor.emplace(running.io);
  const stream_protocol::endpoint endpoint(path);
  acceptor.open(endpoint.protocol());
  acceptor.bind(endpoint);
  if (::chmod(path.c_str(), 0660) != 0) {
    const int error = errno;
    error_code ignored;
    acceptor.close(ignored);
    ::unlink(path.c_str());
    throw std::runtime_error("chmod " + path + ": " + std::strerror(error));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    running.socket_dev = st.st_dev;
    running.socket_ino = st.st_ino;
  }
  running.socket_path = path;
  acceptor.listen(asio::socket_base::max_listen_connections);
  std::lock_guard lock(address_mutex);
  address = "unix://" + path;
}

void ApiServer::Impl::listen_tcp(Running& running, const ListenAddress& parsed) {
  tcp::resolver resolver(running.io);
  const auto results = resolver.resolve(parsed.host, parsed.port, tcp::resolver::passive);
  std::string errors;
  for (const auto& entry : results) {
    auto& acceptor = running.tcp_acceptor.emplace(running.io);
    try {
      acceptor.open(entry.endpoint().protocol());
      acceptor.set_option(asio::socket_base::reuse_address(true));
      acceptor.bind(entry.endpoint());
      acceptor.listen(asio::socket_base::max_listen_connections);
      std::lock_guard lock(address_mutex);
      address = describe(acceptor.local_endpoint());
      return;
    } catch (const boost::system::system_error& e) {
      if (!errors.empty()) errors += "; ";
      errors += describe(entry.endpoint()) + ": " + e.code().message();
      running.tcp_acceptor.reset();
    }
  }
  throw std::runtime_error(errors.empty() ? "no address for " + parsed.host : errors);
}

void ApiServer::Impl::run_io(asio::io_context& io) {
  auto guard = asio::make_work_guard(io);
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      logger->warn("API: unexpected error in the server thread: {}", e.what());
    } catch (...) {
      logger->warn("API: unexpected error in the server thread");
    }
  }
}

void ApiServer::Impl::remove_socket_file(const Running& state) {
  if (state.socket_path.empty()) return;
  struct stat st {};
  // Only our own socket: another server may have taken the path over since.
  if (::stat(state.socket_path.c_str(), &st) == 0 && st.st_dev == state.socket_dev &&
      st.st_ino == state.socket_ino) {
    ::unlink(state.socket_path.c_str());
  }
}

void ApiServer::Impl::log_exception(std::exception_ptr error, const char* what) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    logger->warn("API: {} failed: {}", what, e.what());
  } catch (...) {
    logger->warn("API: {} failed", what);
  }
}

template <class Protocol>
asio::awaitable<void> ApiServer::Impl::accept_loop(
    asio::basic_socket_acceptor<Protocol>& acceptor) {
  for (;;) {
    error_code ec;
    auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // Out of descriptors, most likely: wait a little instead of spinning.
      logger->warn("API: accept failed: {}", ec.message());
      asio::steady_timer pause(acceptor.get_executor(), 100ms);
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    asio::co_spawn(acceptor.get_executor(), serve<Protocol>(std::move(socket)),
                   [this](std::exception_ptr error) { log_exception(error, "connection"); });
  }
}

template <class Protocol>
asio::awaitable<void> ApiServer::Impl::serve(asio::basic_stream_socket<Protocol> socket) {
  const std::string peer = describe_peer(socket);
  beast::basic_stream<Protocol> stream(std::move(socket));
  const std::uint64_t id = ++next_connection;
  connections.emplace(id, [&stream] { stream.close(); });
  struct Unregister {
    Impl* impl;
    std::uint64_t id;
    ~Unregister() { impl->connections.erase(id); }
  } unregister{this, id};

  beast::flat_buffer buffer;
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(options.body_limit);
    error_code ec;
    arm(stream);
    co_await bhttp::async_read_header(stream, buffer, parser,
                                      asio::redirect_error(asio::use_awaitable, ec));
    if (!ec && !parser.is_done() &&
        beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
      bhttp::response<bhttp::empty_body> go_on(bhttp::status::continue_, parser.get().version());
      co_await bhttp::async_write(stream, go_on, asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!ec && !parser.is_done()) {
      co_await bhttp::async_read(stream, buffer, parser,
                                 asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec) {
      co_await refuse(stream, ec, peer);
      co_return;
    }

    bhttp::request<bhttp::string_body> request = parser.release();
    ApiRequest call;
    call.method = std::string(request.method_string());
    call.target = std::string(request.target());
    for (const char* family : {"x-openedge-", "x-baetyl-"}) {
      const auto username = request.find(std::string(family) + "username");
      if (username == request.end() || username->value().empty()) continue;
      call.username = std::string(username->value());
      call.password = std::string(request[std::string(family) + "password"]);
      break;
    }
    call.body = std::move(request.body());
    const std::string method = call.method;
    const std::string target = call.target;

    const auto started = std::chrono::steady_clock::now();
    ApiReply reply = co_await dispatch(std::move(call));
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    if (reply.status >= 400) {
      logger->warn("API {} {} from {}: {} {} ({} ms)", method, target, peer, reply.status,
                   shorten(reply.body), elapsed.count());
    } else {
      logger->debug("API {} {} from {}: {} ({} ms)", method, target, peer, reply.status,
                    elapsed.count());
    }

    bhttp::response<bhttp::string_body> response(static_cast<bhttp::status>(reply.status),
                                                 request.version());
    response.set(bhttp::field::server, "baetyl");
    if (!reply.content_type.empty()) response.set(bhttp::field::content_type, reply.content_type);
    if (!reply.allow.empty()) response.set(bhttp::field::allow, reply.allow);
    response.body() = std::move(reply.body);
    response.keep_alive(request.keep_alive());
    response.prepare_payload();
    arm(stream);
    co_await bhttp::async_write(stream, response, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      logger->debug("API: writing to {} failed: {}", peer, ec.message());
      co_return;
    }
    if (!response.keep_alive()) {
      stream.socket().shutdown(asio::socket_base::shutdown_send, ec);
      co_return;
    }
  }
}

template <class Stream>
asio::awaitable<void> ApiServer::Impl::refuse(Stream& stream, const error_code& ec,
                                              const std::string& peer) {
  if (is_disconnect(ec)) {
    if (ec == beast::error::timeout) logger->debug("API: {} timed out", peer);
    co_return;
  }
  bhttp::status status = bhttp::status::bad_request;
  std::string text = "bad request: " + ec.message();
  if (ec == bhttp::error::body_limit) {
    status = bhttp::status::payload_too_large;
    text = "request body too large";
  } else if (ec == bhttp::error::header_limit) {
    status = bhttp::status::request_header_fields_too_large;
    text = "request header too large";
  }
  logger->warn("API: refusing a request from {}: {}", peer, text);

  bhttp::response<bhttp::string_body> response(status, 11);
  response.set(bhttp::field::server, "baetyl");
  response.set(bhttp::field::content_type, "text/plain; charset=utf-8");
  response.body() = std::move(text);
  response.keep_alive(false);
  response.prepare_payload();
  error_code write_ec;
  arm(stream);
  co_await bhttp::async_write(stream, response,
                              asio::redirect_error(asio::use_awaitable, write_ec));
  if (write_ec) co_return;

  stream.socket().shutdown(asio::socket_base::shutdown_send, write_ec);
  stream.expires_after(kDrainTime);
  char scratch[4096];
  std::size_t drained = 0;
  while (drained < kMaxDrainBytes) {
    drained += co_await stream.async_read_some(asio::buffer(scratch),
                                               asio::redirect_error(asio::use_awaitable, write_ec));
    if (write_ec) break;
  }
}

asio::awaitable<ApiReply> ApiServer::Impl::dispatch(ApiRequest request) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(ApiReply)>(
      [this](auto handler, ApiRequest call) {
        // Shared so the task stays copyable for std::function; it is invoked exactly once, on
        // the connection's own executor.
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        auto deliver = [shared](ApiReply reply) {
          auto executor = asio::get_associated_executor(*shared);
          asio::post(executor,
                     [shared, reply = std::move(reply)]() mutable { (*shared)(std::move(reply)); });
        };
        const bool queued = pool.submit([this, deliver, call = std::move(call)] {
          deliver(handle_api_request(backend, call));
        });
        if (!queued) {
          ApiReply busy;
          busy.status = 503;
          busy.body = "server busy";
          busy.content_type = "text/plain; charset=utf-8";
          deliver(std::move(busy));
        }
      },
      asio::use_awaitable, std::move(request));
}

ApiServer::ApiServer(ApiServerOptions options, ApiBackend& backend,
                     std::shared_ptr<spdlog::logger> logger)
    : impl_(std::make_unique<Impl>(std::move(options), backend, std::move(logger))) {}

ApiServer::~ApiServer() {
  try {
    stop();
  } catch (...) {
  }
}

void ApiServer::start() {
  Impl& impl = *impl_;
  std::lock_guard lock(impl.lifecycle_mutex);
  if (impl.running) throw std::logic_error("API server already started");
  auto running = std::make_unique<Impl::Running>();
  try {
    impl.listen(*running);
  } catch (const std::exception& e) {
    impl.remove_socket_file(*running);
    const std::string reason = e.what();
    if (reason.starts_with("invalid API address")) throw std::runtime_error(reason);
    throw std::runtime_error("cannot listen on the API address " + impl.options.address + ": " +
                             reason);
  }
  impl.pool.restart();
  const auto on_exit = [&impl](std::exception_ptr error) {
    impl.log_exception(error, "accepting connections");
  };
  if (running->unix_acceptor) {
    asio::co_spawn(running->io, impl.accept_loop(*running->unix_acceptor), on_exit);
  }
  if (running->tcp_acceptor) {
    asio::co_spawn(running->io, impl.accept_loop(*running->tcp_acceptor), on_exit);
  }
  running->thread = std::thread([&impl, io = &running->io] { impl.run_io(*io); });
  impl.running = std::move(running);
  impl.logger->info("API server listening on {}", address());
}

void ApiServer::stop() {
  Impl& impl = *impl_;
  std::lock_guard lock(impl.lifecycle_mutex);
  if (!impl.running) return;
  Impl::Running& running = *impl.running;
  running.io.stop();
  running.thread.join();

  // The I/O thread is gone, so its objects may be touched here.
  error_code ignored;
  if (running.unix_acceptor) running.unix_acceptor->close(ignored);
  if (running.tcp_acceptor) running.tcp_acceptor->close(ignored);
  impl.remove_socket_file(running);
  for (auto& [id, close] : impl.connections) close();
  // Backend calls in flight finish (their replies go nowhere); queued ones are dropped.
  impl.pool.stop();
  // Destroys the suspended connection coroutines along with the io_context.
  impl.running.reset();
  impl.connections.clear();
  impl.logger->info("API server stopped");
}

std::string ApiServer::address() const {
  std::lock_guard lock(impl_->address_mutex);
  return impl_->address;
}

}  // namespace baetyl::master
