#include "engine/docker_client.h"

#include "baetyl/asio_core.h"
#include "baetyl/asio_deadline.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <sys/un.h>

#include <cctype>
#include <charconv>
#include <exception>
#include <limits>

namespace baetyl::master {
namespace {

namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using unix_stream = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;

struct Version {
  int major = 0;
  int minor = 0;
};

Version parse_version(std::string_view text) {
  Version version;
  const auto dot = text.find('.');
  auto parse = [&](std::string_view part, int& out) {
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), out);
    return ec == std::errc() && end == part.data() + part.size() && !part.empty();
  };
  if (dot == std::string_view::npos || !parse(text.substr(0, dot), version.major) ||
      !parse(text.substr(dot + 1), version.minor)) {
    throw std::invalid_argument("'" + std::string(text) +
                                "' is not an API version (<major>.<minor>)");
  }
  return version;
}

auto redirect(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using Connection = ExchangeSockets;

using OnLine = std::function<void(std::string_view)>;

template <class Stream>
asio::awaitable<DockerResponse> exchange_over(Stream& stream,
                                              const bhttp::request<bhttp::string_body>& request,
                                              const OnLine* on_line) {
  error_code ec;
  co_await bhttp::async_write(stream, request, redirect(ec));
  if (ec) throw Failure("cannot send the request: " + ec.message());
  boost::beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  // Not boost::none: Boost 1.74 compares a Content-Length with an empty limit as exceeding it.
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  co_await bhttp::async_read_header(stream, buffer, parser, redirect(ec));
  if (ec) throw Failure("no answer: " + ec.message());
  const int status = static_cast<int>(parser.get().result_int());
  const bool streamed = on_line && status / 100 == 2;
  while (!parser.is_done()) {
    co_await bhttp::async_read_some(stream, buffer, parser, redirect(ec));
    if (ec) throw Failure("connection lost while reading the answer: " + ec.message());
    if (!streamed) continue;
    // The string body only ever grows at its end, so whole lines can be taken off its front.
    auto& body = parser.get().body();
    std::size_t begin = 0;
    for (auto end = body.find('\n'); end != std::string::npos; end = body.find('\n', begin)) {
      auto line = std::string_view(body).substr(begin, end - begin);
      if (line.ends_with('\r')) line.remove_suffix(1);  // Docker ends its lines with \r\n
      if (!line.empty()) (*on_line)(line);
      begin = end + 1;
    }
    body.erase(0, begin);
  }
  DockerResponse response;
  response.status = status;
  response.body = std::move(parser.get().body());
  if (streamed && !response.body.empty()) {
    (*on_line)(response.body);
    response.body.clear();
  }
  co_return response;
}

}  // namespace

int compare_api_versions(std::string_view a, std::string_view b) {
  const Version x = parse_version(a), y = parse_version(b);
  if (x.major != y.major) return x.major < y.major ? -1 : 1;
  if (x.minor != y.minor) return x.minor < y.minor ? -1 : 1;
  return 0;
}

std::string negotiate_api_version(const nlohmann::json& server_version,
                                  const std::optional<std::string>& override) {
  if (!server_version.is_object() || !server_version.contains("ApiVersion") ||
      !server_version["ApiVersion"].is_string()) {
    throw std::runtime_error("the daemon's /version has no ApiVersion");
  }
  const std::string server_max = server_version["ApiVersion"].get<std::string>();
  const std::string server_min = server_version.value("MinAPIVersion", std::string("1.12"));
  parse_version(server_max);
  parse_version(server_min);
  const std::string supported =
      "the daemon supports API versions " + server_min + " to " + server_max;
  if (override) {
    parse_version(*override);
    if (compare_api_versions(*override, server_max) > 0 ||
        compare_api_versions(*override, server_min) < 0) {
      throw std::runtime_error("API version " + *override + " was asked for, but " + supported);
    }
    return *override;
  }
  if (compare_api_versions(server_max, kDockerClientMinVersion) < 0) {
    throw std::runtime_error(supported + "; the master needs " +
                             std::string(kDockerClientMinVersion) + " or newer (Docker 17.06+)");
  }
  return compare_api_versions(server_max, kDockerClientMaxVersion) < 0
             ? server_max
             : std::string(kDockerClientMaxVersion);
}

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string DockerResponse::message() const {
  auto json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_object() && json.contains("message") && json["message"].is_string()) {
    return json["message"].get<std::string>();
  }
  std::string text = body;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text.empty() ? "HTTP status " + std::to_string(status) : text;
}

DockerClient::DockerClient(std::string host) : host_(std::move(host)) {
  constexpr std::string_view kUnix = "unix://", kTcp = "tcp://";
  if (host_.starts_with(kUnix) && host_.size() > kUnix.size()) {
    socket_path_ = host_.substr(kUnix.size());
    if (socket_path_.size() >= sizeof(sockaddr_un::sun_path)) {
      throw std::invalid_argument("Docker host '" + host_ + "': socket path too long");
    }
    return;
  }
  if (host_.starts_with(kTcp)) {
    std::string authority = host_.substr(kTcp.size());
    if (!authority.empty() && authority.back() == '/') authority.pop_back();
    const auto colon = authority.rfind(':');
    if (colon != std::string::npos && colon > 0 && colon + 1 < authority.size()) {
      tcp_host_ = authority.substr(0, colon);
      tcp_port_ = authority.substr(colon + 1);
      if (tcp_host_.front() == '[' && tcp_host_.back() == ']') {
        tcp_host_ = tcp_host_.substr(1, tcp_host_.size() - 2);
      }
      return;
    }
  }
  throw std::invalid_argument("Docker host '" + host_ +
                              "' is not unix:///path/to/socket or tcp://host:port");
}

std::string DockerClient::full_path(const std::string& path, bool versioned) const {
  return versioned && !api_version_.empty() ? "/v" + api_version_ + path : path;
}

DockerResponse DockerClient::call(const std::string& method, const std::string& path,
                                  const std::optional<nlohmann::json>& body,
                                  std::chrono::milliseconds timeout, bool versioned) const {
  return exchange(method, full_path(path, versioned), body, timeout, nullptr);
}

DockerResponse DockerClient::stream(const std::string& method, const std::string& path,
                                    const std::function<void(std::string_view)>& on_line,
                                    std::chrono::milliseconds timeout) const {
  return exchange(method, full_path(path, true), std::nullopt, timeout, &on_line);
}

DockerResponse DockerClient::exchange(const std::string& method, const std::string& target,
                                      const std::optional<nlohmann::json>& body,
                                      std::chrono::milliseconds timeout,
                                      const std::function<void(std::string_view)>* on_line) const {
  bhttp::request<bhttp::string_body> request;
  request.method_string(method);
  request.target(target);
  request.version(11);
  request.set(bhttp::field::host, "docker");
  request.set(bhttp::field::user_agent, "baetyl");
  if (body) {
    request.set(bhttp::field::content_type, "application/json");
    request.body() = body->dump();
  }
  if (body || method == "POST" || method == "PUT") request.prepare_payload();

  const auto deadline = timeout.count() > 0 ? std::optional(Clock::now() + timeout) : std::nullopt;
  asio::io_context io(1);
  Connection connection(io);
  auto run = [&]() -> asio::awaitable<DockerResponse> {
    error_code ec;
    if (!socket_path_.empty()) {
      co_await connection.unix_socket.async_connect(unix_stream::endpoint(socket_path_),
                                                    redirect(ec));
      if (ec) throw Failure("cannot connect: " + ec.message());
      co_return co_await exchange_over(connection.unix_socket, request, on_line);
    }
    tcp::resolver resolver(io);
    auto endpoints = co_await resolver.async_resolve(tcp_host_, tcp_port_, redirect(ec));
    if (ec) throw Failure("cannot resolve " + tcp_host_ + ": " + ec.message());
    co_await asio::async_connect(connection.tcp_socket, endpoints, redirect(ec));
    if (ec) throw Failure("cannot connect: " + ec.message());
    co_return co_await exchange_over(connection.tcp_socket, request, on_line);
  };
  const std::string what = "Docker " + host_ + ": " + method + " " + target;
  std::optional<DockerResponse> response;
  try {
    response = run_with_deadline(io, run(), deadline, [&] { connection.close(); });
  } catch (const Failure& e) {
    throw std::runtime_error(what + ": " + e.what());
  }
  if (!response) {
    throw std::runtime_error(what + ": no answer within " + std::to_string(timeout.count()) +
                             " ms");
  }
  return std::move(*response);
}

nlohmann::json DockerClient::call_json(const std::string& method, const std::string& path,
                                       const std::optional<nlohmann::json>& body,
                                       std::chrono::milliseconds timeout) const {
  auto response = call(method, path, body, timeout);
  if (!response.ok()) throw DockerApiError(response.status, response.message());
  if (response.body.empty()) return nullptr;
  auto json = nlohmann::json::parse(response.body, nullptr, false);
  if (json.is_discarded()) {
    throw std::runtime_error("Docker " + host_ + ": " + method + " " + path +
                             ": the answer is not JSON");
  }
  return json;
}

}  // namespace baetyl::master
