#pragma once
// The master's REST API (the docs' "RESTful API") over HTTP/1.1 with Boost.Beast, on a Unix socket
// or TCP. Routes, under /v1 and also without the version prefix (older modules):
//   GET  /system/inspect                                  -> backend.inspect()
//   PUT  /system/update          {"type","path"|"file","trace"}
//   GET  /ports/available                                 -> {"port":"NNNNN"}
//   PUT  /services/{service}/instances/{instance}/start   body: {"ENV":"value",...} (may be empty)
//   PUT  /services/{service}/instances/{instance}/stop
//   PUT  /services/{service}/instances/{instance}/report  body: a JSON object
//   PUT  /services/{service}/restart                       -> backend.restart_service()
//   PUT  /system/stop                                      -> backend.stop_master()
// Every route needs x-openedge-username/x-openedge-password (or x-baetyl-username/-password)
// accepted by backend.authenticate(), else 401 with the body "account unauthorized". The update
// and instance routes tell the backend who calls (the user name); an ApiForbidden it throws becomes
// 403, any other backend exception 400, each with its what() as a text body; a bad body is 400 too;
// an unknown route 404; a body over the limit 413.
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>

#include "baetyl/api/inspect.h"

namespace baetyl::master {

// Thrown by a backend for a caller that may not do what it asked: 403 with the text.
class ApiForbidden : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the API serves. Called from the server's thread(s); implementations synchronise.
class ApiBackend {
 public:
  virtual ~ApiBackend() = default;
  virtual bool authenticate(const std::string& username, const std::string& password) = 0;
  virtual nlohmann::json inspect() = 0;
  // Starts the update in the background and returns at once; throws for a request it refuses.
  // `caller`, here and below, is the user name the request authenticated as.
  virtual void update(const std::string& caller, const api::UpdateRequest& request) = 0;
  virtual std::string available_port() = 0;
  virtual void start_instance(const std::string& caller, const std::string& service,
                              const std::string& instance,
                              const std::map<std::string, std::string>& env) = 0;
  virtual void stop_instance(const std::string& caller, const std::string& service,
                             const std::string& instance) = 0;
  virtual void report_instance(const std::string& caller, const std::string& service,
                               const std::string& instance, const nlohmann::json& report) = 0;
  // Restarts every instance of `service` and returns their inspect entries afterwards. Backends
  // that cannot refuse with a std::runtime_error.
  virtual nlohmann::json restart_service(const std::string& caller, const std::string& service);
  // Makes the master stop as on SIGTERM, after this call returned.
  virtual void stop_master(const std::string& caller);
};

struct ApiServerOptions {
  // unix:///abs/path.sock, unix://relative/path.sock (relative to the current directory), or
  // tcp://host:port (port 0 picks a free one; see ApiServer::address()).
  std::string address;
  std::chrono::milliseconds timeout{30000};  // to read a request, and to write its response
  std::size_t body_limit = 1 << 20;          // bytes; larger bodies get 413
};

class ApiServer {
 public:
  ApiServer(ApiServerOptions options, ApiBackend& backend, std::shared_ptr<spdlog::logger> logger);
  ~ApiServer();  // stops
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds and starts serving on its own thread. A stale socket file left by a dead master is
  // replaced; one that a live server still answers on is an error. The socket file gets mode
  // 0660. Throws std::runtime_error naming the address when it cannot listen.
  void start();
  // Stops accepting, closes connections, joins the thread and removes the socket file.
  void stop();
  // The address actually listened on (tcp port 0 resolved), e.g. "tcp://127.0.0.1:41234".
  std::string address() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace baetyl::master
