#include "api/metrics_server.h"

#include "baetyl/asio_core.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <stdexcept>
#include <thread>

namespace baetyl::master {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;

namespace {

constexpr auto kIdleTimeout = std::chrono::seconds(60);
constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

struct MetricsServer::Impl {
  std::string requested;
  std::function<std::string()> render;
  std::shared_ptr<spdlog::logger> logger;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread thread;
  std::string listened;

  asio::awaitable<void> accept_loop() {
    for (;;) {
      error_code ec;
      auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) {
        asio::steady_timer pause(io, std::chrono::milliseconds(100));
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      asio::co_spawn(io, serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      error_code ec;
      bhttp::request<bhttp::empty_body> request;
      stream.expires_after(kIdleTimeout);
      co_await bhttp::async_read(stream, buffer, request,
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      bhttp::response<bhttp::string_body> response(bhttp::status::ok, request.version());
      response.set(bhttp::field::server, "baetyl");
      const std::string target(request.target());
      const std::string path = target.substr(0, target.find('?'));
      if (path != "/metrics") {
        response.result(bhttp::status::not_found);
        response.set(bhttp::field::content_type, "text/plain; charset=utf-8");
        response.body() = "not found: the metrics are at /metrics\n";
      } else if (request.method() != bhttp::verb::get && request.method() != bhttp::verb::head) {
        response.result(bhttp::status::method_not_allowed);
        response.set(bhttp::field::allow, "GET, HEAD");
      } else {
        try {
          response.body() = render();
          response.set(bhttp::field::content_type, kContentType);
        } catch (const std::exception& e) {
          logger->warn("metrics: cannot collect: {}", e.what());
          response.result(bhttp::status::internal_server_error);
          response.body() = std::string(e.what()) + "\n";
        }
      }
      response.keep_alive(request.keep_alive());
      response.prepare_payload();
      stream.expires_after(kIdleTimeout);
      co_await bhttp::async_write(stream, response, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !response.keep_alive()) co_return;
    }
  }
};

MetricsServer::MetricsServer(std::string address, std::function<std::string()> render,
                             std::shared_ptr<spdlog::logger> logger)
    : impl_(std::make_unique<Impl>()) {
  impl_->requested = std::move(address);
  impl_->render = std::move(render);
  impl_->logger = std::move(logger);
}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::start() {
  const std::string& address = impl_->requested;
  auto fail = [&](const std::string& reason) {
    return std::runtime_error("metrics.address '" + address + "': " + reason);
  };
  if (address.rfind("tcp://", 0) != 0) throw fail("expected tcp://host:port");
  std::string authority = address.substr(6);
  const auto colon = authority.rfind(':');
  if (colon == std::string::npos) throw fail("expected tcp://host:port");
  std::string host = authority.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string port = authority.substr(colon + 1);
  error_code ec;
  tcp::resolver resolver(impl_->io);
  auto endpoints = resolver.resolve(host, port, ec);
  if (ec || endpoints.empty()) throw fail("cannot resolve: " + ec.message());
  const tcp::endpoint endpoint = *endpoints.begin();
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw fail("cannot listen: " + ec.message());
  const auto local = acceptor.local_endpoint();
  impl_->listened = "tcp://" +
                    (local.address().is_v6() ? "[" + local.address().to_string() + "]"
                                             : local.address().to_string()) +
                    ":" + std::to_string(local.port());
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
  impl_->thread = std::thread([this] { impl_->io.run(); });
  impl_->logger->info("metrics served at {}/metrics", impl_->listened);
}

void MetricsServer::stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->io, [this] {
    error_code ec;
    impl_->acceptor.close(ec);
  });
  impl_->io.stop();
  impl_->thread.join();
}

std::string MetricsServer::address() const { return impl_->listened; }

}  // namespace baetyl::master
