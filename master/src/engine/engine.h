#pragma once
// The engine runs instances of services: processes in native mode, containers in docker mode.
// It knows nothing of restart policies; the supervisor (src/core) decides when to start again.
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/app_config.h"

namespace baetyl::master {

using EnvList = std::vector<std::pair<std::string, std::string>>;

struct InstanceSpec {
  std::string service;   // service name
  std::string instance;  // instance name: the service name, <service>.i<N>, or a dynamic name
  ServiceInfo info;      // the service definition
  // Everything the instance gets on top of the master's own environment (native) or its image's
  // (docker), in order (a later entry wins): the service's `env`, then the system variables
  // under both names, then a dynamic instance's extra env.
  EnvList env;
};

struct ExitStatus {
  int code = 0;    // exit code when it exited
  int signal = 0;  // the signal that killed it, 0 when it exited
  bool success() const { return code == 0 && signal == 0; }
  std::string describe() const;  // "exit code 3", "killed by signal 9 (Killed)"
};

// Thrown by Engine::start when what the instance runs is not there (docker: an image neither
// local nor pullable). Unlike other start failures it does not fail the service: the supervisor
// reports it and tries again by the restart policy, as after a crash, so that one missing image
// never keeps the other services from running.
class InstanceUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Instance {
 public:
  virtual ~Instance() = default;
  virtual const std::string& name() const = 0;
  // For inspect: {"process":{"id":<pid>,"name":"<argv0>"}} (native) or
  // {"container":{"id":...,"name":...}} (docker), plus "cpu_stats":{"used_percent"} and
  // "mem_stats":{"total","used","used_percent"} when they can be read.
  virtual nlohmann::json stats() = 0;
  // Blocks until the instance has exited and returns how. Called by one supervising thread while
  // another thread may call stop(); may be called again after it returned (same result).
  virtual ExitStatus wait() = 0;
  // Asks the instance to exit (SIGTERM / docker stop), waits up to `grace`, then kills it (and, in
  // native mode, its whole process group). Returns once it is gone. Safe to call more than once,
  // and after it exited by itself.
  virtual void stop(std::chrono::milliseconds grace) = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string_view mode() const = 0;  // "native" or "docker"
  // The master API address as an instance reaches it, given the one the API listens on
  // (unix://<absolute path> or tcp://host:port): native instances use that one; containers get
  // the socket bound at unix:///var/run/baetyl.sock.
  virtual std::string instance_api_address(const std::string& listened) const { return listened; }

  // Called once at start, before anything runs: stops and removes what a previous master that
  // crashed left behind (processes/containers it had started, service work directories).
  virtual void clean_leftovers() = 0;
  // Before services start (at start and for an update): checks or fetches what they need
  // (native: resolves each image to an executable; docker: pulls images). Throws
  // std::runtime_error naming the service and the reason.
  virtual void prepare(const AppConfig& app) = 0;
  // Before the first instance of a service starts: native creates the service work directory
  // with a symlink per mount and the master socket; docker creates nothing per service.
  // `volumes` are the app's volumes (paths relative to the master work directory).
  virtual void setup_service(const ServiceInfo& service,
                             const std::vector<VolumeInfo>& volumes) = 0;
  // After the last instance of a service stopped: removes what setup_service created.
  virtual void teardown_service(const std::string& service) = 0;
  // Starts one instance. Throws std::runtime_error when it cannot be started (the message names
  // the instance and the reason), InstanceUnavailable when what it runs is missing.
  virtual std::unique_ptr<Instance> start(const InstanceSpec& spec) = 0;
};

}  // namespace baetyl::master
