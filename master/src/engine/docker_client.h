#pragma once
// The Docker Engine API as the docker engine uses it: HTTP/1.1 over the daemon's Unix socket (or
// plain TCP), one connection per call, JSON bodies, the API version negotiated once and put in
// front of every path. Beast directly rather than the SDK's HTTP client, which links OpenSSL into
// the master and reads a body only whole: an image pull's progress is read as it comes.
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace baetyl::master {

// The newest Engine API version this client speaks, and the oldest it accepts from a daemon
// (NanoCpus and PidsLimit need 1.25; the `condition` of a wait 1.30).
inline constexpr std::string_view kDockerClientMaxVersion = "1.41";
inline constexpr std::string_view kDockerClientMinVersion = "1.30";
inline constexpr const char* kDefaultDockerHost = "unix:///var/run/docker.sock";

// -1, 0 or 1 as "1.38" is older, the same or newer than "1.40". Throws std::invalid_argument for
// a text that is not <major>.<minor>.
int compare_api_versions(std::string_view a, std::string_view b);

// The API version to use with a daemon whose GET /version answered `server_version`:
// `override` when set (conf.yml docker.api_version or DOCKER_API_VERSION), else the older of
// kDockerClientMaxVersion and the daemon's ApiVersion. Throws std::runtime_error when the daemon
// is older than kDockerClientMinVersion or the override is outside what the daemon supports
// (MinAPIVersion..ApiVersion), saying which versions it supports.
std::string negotiate_api_version(const nlohmann::json& server_version,
                                  const std::optional<std::string>& override);

// `text` percent-encoded for a query parameter (unreserved characters kept).
std::string url_encode(std::string_view text);

// The daemon answered with an error status; `what()` is "<status>: <daemon's message>".
class DockerApiError : public std::runtime_error {
 public:
  DockerApiError(int status, const std::string& message)
      : std::runtime_error(std::to_string(status) + ": " + message),
        status_(status),
        message_(message) {}
  int status() const { return status_; }
  const std::string& message() const { return message_; }

 private:
  int status_;
  std::string message_;
};

struct DockerResponse {
  int status = 0;
  std::string body;
  bool ok() const { return status >= 200 && status < 300; }
  // The daemon's error text: the body's "message", else the body itself.
  std::string message() const;
};

class DockerClient {
 public:
  // `host`: unix:///path or tcp://host:port (DOCKER_HOST's forms without TLS). Throws
  // std::invalid_argument for anything else.
  explicit DockerClient(std::string host);

  const std::string& host() const { return host_; }
  // The version every versioned call uses ("1.41"), empty until set.
  const std::string& api_version() const { return api_version_; }
  void set_api_version(std::string version) { api_version_ = std::move(version); }

  // One exchange. `path` is the part after /v<version> (e.g. "/containers/json?all=1"), or, when
  // `versioned` is false, the whole path ("/version"). A zero timeout means none (a wait for a
  // container's exit). Throws std::runtime_error naming the daemon and the call when the
  // exchange fails (no daemon, refused, timed out, connection lost).
  DockerResponse call(const std::string& method, const std::string& path,
                      const std::optional<nlohmann::json>& body = std::nullopt,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30),
                      bool versioned = true) const;
  // The same for a body that is a stream of JSON lines (an image pull): `on_line` gets each line
  // as it arrives. The returned body is empty on success and holds the error body otherwise.
  DockerResponse stream(const std::string& method, const std::string& path,
                        const std::function<void(std::string_view line)>& on_line,
                        std::chrono::milliseconds timeout) const;

  // call() that throws DockerApiError unless the status is 2xx; the body parsed (null when empty).
  nlohmann::json call_json(const std::string& method, const std::string& path,
                           const std::optional<nlohmann::json>& body = std::nullopt,
                           std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;

 private:
  std::string full_path(const std::string& path, bool versioned) const;
  DockerResponse exchange(const std::string& method, const std::string& target,
                          const std::optional<nlohmann::json>& body,
                          std::chrono::milliseconds timeout,
                          const std::function<void(std::string_view)>* on_line) const;

  std::string host_;
  std::string socket_path_;  // unix
  std::string tcp_host_;     // tcp
  std::string tcp_port_;
  std::string api_version_;
};

}  // namespace baetyl::master
