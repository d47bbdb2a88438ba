#pragma once
// Client of the master's REST API (see the docs' "RESTful API"): what a service uses to inspect
// the system, trigger an update, get a free port, start/stop dynamic instances and report stats.
#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "baetyl/api/inspect.h"
#include "baetyl/http/client.h"

namespace baetyl::api {

struct MasterClientOptions {
  std::string address{};       // BAETYL_MASTER_API_ADDRESS, e.g. unix:///var/run/baetyl.sock
  std::string version = "v1";  // BAETYL_MASTER_API_VERSION; empty means v1
  std::string username{};      // BAETYL_SERVICE_NAME; no auth headers when empty
  std::string password{};      // BAETYL_SERVICE_TOKEN
  std::chrono::milliseconds timeout{30000};
};

// The master answered, but not with success (status() outside 2xx), or with a body that is not
// the JSON expected (status() is then the 2xx it came with). The message reads like
// "master API PUT /v1/services/a/instances/b/start returned 401: account unauthorized".
class ApiError : public std::runtime_error {
 public:
  ApiError(const std::string& message, long status, std::string body)
      : std::runtime_error(message), status_(status), body_(std::move(body)) {}
  long status() const noexcept { return status_; }
  const std::string& body() const noexcept { return body_; }

 private:
  long status_;
  std::string body_;
};

// Thread-safe. Every call throws http::HttpError when the master cannot be reached (or does not
// answer within the timeout), ApiError as described above, and std::invalid_argument for an empty
// service or instance name. The constructor throws std::invalid_argument for a bad address.
class MasterClient {
 public:
  explicit MasterClient(MasterClientOptions options);

  // GET /v1/system/inspect
  Inspect inspect_system() const;
  // The same document as the master sent it (a JSON object), every key kept: what the agent
  // passes on to its cloud.
  nlohmann::json inspect_document() const;
  // PUT /v1/system/update with {"type","path","trace"}; the master updates in the background.
  void update_system(const UpdateRequest& request) const;
  // GET /v1/ports/available -> {"port":"12345"}; returns "12345".
  std::string available_port() const;
  // PUT /v1/services/{service}/instances/{instance}/start with the extra environment as a JSON
  // object of strings.
  void start_instance(const std::string& service, const std::string& instance,
                      const std::map<std::string, std::string>& env) const;
  // PUT /v1/services/{service}/instances/{instance}/stop
  void stop_instance(const std::string& service, const std::string& instance) const;
  // PUT /v1/services/{service}/instances/{instance}/report; the object's top-level keys replace
  // the same keys of the instance's entry in inspect.
  void report_instance(const std::string& service, const std::string& instance,
                       const nlohmann::json& stats) const;

  const MasterClientOptions& options() const { return options_; }

 private:
  http::Response call(const std::string& method, const std::string& path, std::string body) const;
  nlohmann::json call_json(const std::string& method, const std::string& path, long& status) const;
  std::string instance_path(const std::string& service, const std::string& instance,
                            const char* action) const;

  MasterClientOptions options_;
  http::Client http_;
};

}  // namespace baetyl::api
