#pragma once
// The master: runs the services of application.yml on an engine, supervises their instances,
// serves the REST API and applies updates.
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/logger.h>

#include "api/api_server.h"
#include "api/metrics_server.h"
#include "config/app_config.h"
#include "config/master_config.h"
#include "core/ota_log.h"
#include "core/supervisor.h"
#include "core/update_source.h"
#include "engine/engine.h"
#include "stats/host_stats.h"

namespace baetyl::master {

// Where `baetyl inspect` finds the API and the admin credentials: written at start (mode 0600),
// removed at stop. Not inside any service directory, so services never see it.
inline constexpr const char* kAdminFile = "var/run/baetyl/admin.json";
// The user name of the admin credentials; '.' is not allowed in service names.
inline constexpr const char* kAdminUser = "baetyl.admin";
// In native mode, each instance's stdout and stderr: <dir>/<instance>.log, rotated by the logger
// keys of conf.yml (see output_capture.h).
inline constexpr const char* kServiceLogDir = "var/log/baetyl/services";
// The marker of a master binary update in progress (see master_update.h).
inline constexpr const char* kMasterUpdateFile = "var/db/baetyl/master-update.json";

struct MasterOptions {
  std::filesystem::path workdir;  // absolute; the current directory too
  MasterConfig config;
  std::filesystem::path binary;  // the running executable, replaced by a master update
  std::shared_ptr<spdlog::logger> logger;
  std::unique_ptr<Engine> engine;  // nullptr: the engine of config.mode
  // The application to start, checked already (see start_check.h); empty: no service.
  AppConfig app;
  // Whether start() stops what a previous master left running: false when that master still
  // runs (it handed the work directory over).
  bool clean_leftovers = true;
  // Called (from an update thread) when a master update installed a new binary and the process
  // must stop its services and hand over to it (see update_waiter.h).
  std::function<void()> request_reexec;
  // Called (from an API thread) for `baetyl stop`: the master is to stop as on SIGTERM.
  std::function<void()> request_stop;
};

class Master final : public ApiBackend {
 public:
  explicit Master(MasterOptions options);
  ~Master() override;
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // Cleans a crashed master's leftovers, starts the API and starts every service of the
  // application in order. Throws, with everything stopped again, when any of it fails.
  void start();
  // Stops every instance (SIGTERM, grace, SIGKILL; all services at once), then revokes the
  // services' tokens, removes the service directories, the admin file and the API socket. While
  // it stops, a service's request to stop an instance succeeds at once (every instance is being
  // stopped) and one to start an instance is refused. Idempotent.
  void stop();

  // The address of the Prometheus endpoint (tcp://host:port, port resolved); empty without one.
  std::string metrics_address() const { return metrics_ ? metrics_->address() : ""; }
  // The master API address as the instances get it (absolute socket path, or tcp).
  const std::string& instance_api_address() const { return instance_api_address_; }
  // For a master update: whether this start completes one (and what to log).
  void finish_master_update();

  // ApiBackend
  bool authenticate(const std::string& username, const std::string& password) override;
  nlohmann::json inspect() override;
  // Who may update (docs/master.md, "Who may call what"): the admin, services whose image is the
  // agent's (kUpdateAgentImage) and those named in conf.yml `update.services`; others get
  // ApiForbidden before the path is looked at. The file must lie inside var/db/baetyl
  // (update_source.h) and in no volume that a service other than the caller mounts writable.
  void update(const std::string& caller, const api::UpdateRequest& request) override;
  std::string available_port() override;
  // Who may start and stop which instance (docs/master.md, "Who may call what"): the admin any
  // instance; a service, by its token, only dynamic instances of services with replica 0, and of
  // those only the ones it started. Static instances keep their service's token when the admin
  // starts them again. The extra environment may not set LD_*, PATH, BAETYL_* or OPENEDGE_*
  // variables, except the instance address.
  void start_instance(const std::string& caller, const std::string& service,
                      const std::string& instance,
                      const std::map<std::string, std::string>& env) override;
  // A dynamic instance is removed; a static one (the admin's call) stays listed as exited.
  void stop_instance(const std::string& caller, const std::string& service,
                     const std::string& instance) override;
  // Admin only: stops every instance of the service and starts it again with the same
  // definition and environment (one instance after the other). Returns their inspect entries.
  nlohmann::json restart_service(const std::string& caller, const std::string& service) override;
  // Admin only: request_stop (SIGTERM to the master) once the reply is on its way.
  void stop_master(const std::string& caller) override;
  // A service reports for its own instances only.
  void report_instance(const std::string& caller, const std::string& service,
                       const std::string& instance, const nlohmann::json& report) override;

 private:
  struct Service {
    ServiceInfo info;
    std::vector<VolumeInfo> volumes;
    std::string token;
    std::vector<std::shared_ptr<InstanceSupervisor>> instances;
    // Guarded by state_mutex_:
    bool stopping = false;  // its instances are being stopped: none is added any more
    std::map<std::string, std::string> started_by;  // dynamic instance -> who started it
    // Serialises the API's starts of this service's instances (one name, one instance).
    std::mutex start_mutex;
  };

  void apply(const AppConfig& target);
  // A new service known to the API (its engine set up), not running yet.
  std::shared_ptr<Service> register_service(const ServiceInfo& info, const AppConfig& app);
  // Starts a registered service's replicas; on failure stops the service and throws.
  void start_instances(Service& service);
  static std::vector<std::string> names_of(const std::vector<std::shared_ptr<Service>>& services);
  void stop_services(const std::vector<std::string>& names);
  void stop_instances(const std::vector<std::shared_ptr<InstanceSupervisor>>& instances);
  // Throws ApiForbidden unless `caller` may update the node.
  void authorize_update(const std::string& caller) const;
  // Throws ApiForbidden when `source` lies in a volume that a service other than `caller` mounts
  // writable (it could have written the file).
  void check_update_writers(const std::string& caller, const UpdateSource& source) const;
  // Throws ApiForbidden unless `caller` may start or stop `instance` of `service`.
  void authorize_instance_call(const std::string& caller, const Service& service,
                               const std::string& instance) const;
  InstanceSpec make_spec(const Service& service, const std::string& instance,
                         const std::string& token,
                         const std::map<std::string, std::string>& extra_env) const;
  std::shared_ptr<Service> find_service(const std::string& name) const;
  std::shared_ptr<InstanceSupervisor> find_instance(const Service& service,
                                                    const std::string& instance) const;
  static std::shared_ptr<InstanceSupervisor> find_instance_locked(const Service& service,
                                                                  const std::string& instance);
  // The same, throwing std::invalid_argument ("... not found") instead of returning null.
  std::shared_ptr<Service> require_service(const std::string& name) const;
  std::shared_ptr<InstanceSupervisor> require_instance(const Service& service,
                                                       const std::string& instance) const;
  void run_update(const api::UpdateRequest& request, const UpdateSource& source,
                  const std::string& text);
  // Logs the final step of the running update and ends it (see update_state_mutex_).
  void finish_update(const char* step, const std::string& type, const std::string& trace,
                     const std::string& detail = {});
  // `text`: the new application.yml, read when the request came.
  void run_app_update(const api::UpdateRequest& request, const std::string& text);
  void run_master_update(const api::UpdateRequest& request, const UpdateSource& source);
  void write_admin_file();
  void set_error(std::string error);

  std::filesystem::path workdir_;
  MasterConfig config_;
  std::filesystem::path binary_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<Engine> engine_;
  std::function<void()> request_reexec_;
  std::function<void()> request_stop_;
  std::unique_ptr<ApiServer> api_;
  std::unique_ptr<MetricsServer> metrics_;  // conf.yml metrics.address
  HostStats host_stats_;
  OtaLog ota_log_;
  AppConfig initial_app_;
  bool clean_leftovers_;
  std::string admin_token_;
  std::string host_id_;
  std::string instance_api_address_;

  // Serialises what changes the set of running instances: start, stop, updates, dynamic instances.
  std::mutex ops_mutex_;
  // Guards the fields below, held only briefly (never while an instance starts or stops).
  mutable std::mutex state_mutex_;
  AppConfig app_;
  std::vector<std::string> order_;
  std::map<std::string, std::shared_ptr<Service>> services_;
  std::string error_;

  // An update runs from its request until its final step is in ota.log. Both change under this
  // mutex, so a client that read the final step and sends the next update is never refused.
  std::mutex update_state_mutex_;
  bool updating_ = false;
  std::uint64_t update_generation_ = 0;
  std::thread update_thread_;
  bool started_ = false;
  bool stopped_ = false;
  // Set as stop() begins, read without ops_mutex_ by the instance routes.
  std::atomic<bool> stopping_{false};
};

// The engine of `config.mode` for a master in `workdir` whose executable is `binary`. The docker
// engine talks to DOCKER_HOST (default unix:///var/run/docker.sock) with the API version of
// docker.api_version, else DOCKER_API_VERSION, else negotiated; it throws std::runtime_error
// when the daemon cannot be reached.
std::unique_ptr<Engine> make_engine(const MasterConfig& config, const std::filesystem::path& workdir,
                                    const std::filesystem::path& binary,
                                    std::shared_ptr<spdlog::logger> logger);

// The socket file of a unix:// address, made absolute against `workdir`; empty for tcp.
std::filesystem::path socket_path(const std::string& address, const std::filesystem::path& workdir);

}  // namespace baetyl::master
