#include "core/master.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "baetyl/env.h"
#include "core/atomic_file.h"
#include "core/master_update.h"
#include "core/system_info.h"
#include "core/update_plan.h"
#include "engine/docker_engine.h"
#include "engine/native_engine.h"
#include "stats/prometheus.h"

namespace baetyl::master {

namespace fs = std::filesystem;

namespace {

constexpr const char* kInstancePattern = "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}";
constexpr std::chrono::seconds kCheckTimeout{30};

std::string replica_name(const std::string& service, int index) {
  return index == 0 ? service : service + ".i" + std::to_string(index);
}

// Whether `instance` is one of the replicas the master runs for `service`.
bool is_static_instance(const ServiceInfo& service, const std::string& instance) {
  for (int i = 0; i < service.replica; ++i) {
    if (replica_name(service.name, i) == instance) return true;
  }
  return false;
}

// The variables the extra environment of an instance may not set: the dynamic loader's, the
// program search path, and the master's own (BAETYL_*, OPENEDGE_*), except the address the
// instance is to listen on, which is what the extra environment is for.
void check_instance_env(const std::map<std::string, std::string>& env) {
  for (const auto& [name, value] : env) {
    if (name.empty() || name.find('=') != std::string::npos) {
      throw std::invalid_argument("start body: '" + name + "' is not a variable name");
    }
    const bool address =
        name == env::kServiceInstanceAddress.name || name == env::kServiceInstanceAddress.legacy;
    if (name.starts_with("LD_") || name == "PATH" ||
        ((name.starts_with("BAETYL_") || name.starts_with("OPENEDGE_")) && !address)) {
      throw std::invalid_argument(
          "start body: \"" + name +
          "\" cannot be set: LD_*, PATH, BAETYL_* and OPENEDGE_* variables are the master's "
          "(of these only BAETYL_SERVICE_INSTANCE_ADDRESS and OPENEDGE_SERVICE_INSTANCE_ADDRESS "
          "may be given)");
    }
  }
}

}  // namespace

fs::path socket_path(const std::string& address, const fs::path& workdir) {
  constexpr std::string_view kUnix = "unix://";
  if (address.rfind(kUnix, 0) != 0) return {};
  fs::path path = address.substr(kUnix.size());
  return path.is_absolute() ? path : workdir / path;
}

std::unique_ptr<Engine> make_engine(const MasterConfig& config, const fs::path& workdir,
                                    const fs::path& binary,
                                    std::shared_ptr<spdlog::logger> logger) {
  if (config.mode == "native") {
    NativeEngineOptions options;
    options.workdir = workdir;
    options.api_socket = socket_path(config.server.address, workdir);
    options.bin_dirs.push_back(workdir / "bin");
    if (!binary.empty() && binary.parent_path() != workdir / "bin") {
      options.bin_dirs.push_back(binary.parent_path());
    }
    options.state_file = workdir / "var/db/baetyl/native-instances.json";
    options.log_dir = workdir / kServiceLogDir;
    options.log_rotation.max_bytes = static_cast<std::uint64_t>(config.logger.size_max) << 20;
    options.log_rotation.max_backups = config.logger.backup_max;
    options.log_rotation.max_age = std::chrono::hours(24 * config.logger.age_max);
    options.logger = std::move(logger);
    return std::make_unique<NativeEngine>(std::move(options));
  }
  DockerEngineOptions options;
  options.workdir = workdir;
  options.api_socket = socket_path(config.server.address, workdir);
  if (const char* host = std::getenv("DOCKER_HOST"); host && *host) options.host = host;
  if (!config.docker.api_version.empty()) {
    options.api_version = config.docker.api_version;
  } else if (const char* version = std::getenv("DOCKER_API_VERSION"); version && *version) {
    options.api_version = version;
  }
  options.pull_timeout = config.docker.pull_timeout;
  options.cgroup_parent = config.docker.cgroup_parent;
  options.logger = std::move(logger);
  auto engine = std::make_unique<DockerEngine>(std::move(options));
  engine->connect();
  return engine;
}

Master::Master(MasterOptions options)
    : workdir_(std::move(options.workdir)),
      config_(std::move(options.config)),
      binary_(std::move(options.binary)),
      log_(std::move(options.logger)),
      engine_(std::move(options.engine)),
      request_reexec_(std::move(options.request_reexec)),
      request_stop_(std::move(options.request_stop)),
      host_stats_(workdir_.string()),
      ota_log_(workdir_ / kOtaLogFile),
      initial_app_(std::move(options.app)),
      clean_leftovers_(options.clean_leftovers),
      host_id_(host_id()) {
  if (!engine_) engine_ = make_engine(config_, workdir_, binary_, log_);
}

Master::~Master() { stop(); }

void Master::start() {
  started_ = true;
  if (clean_leftovers_) engine_->clean_leftovers();

  ApiServerOptions api_options;
  api_options.address = config_.server.address;
  api_options.timeout = config_.server.timeout;
  api_ = std::make_unique<ApiServer>(api_options, *this, log_);
  api_->start();
  const std::string listened = api_->address();
  if (fs::path socket = socket_path(listened, workdir_); !socket.empty()) {
    instance_api_address_ = "unix://" + socket.string();
  } else {
    instance_api_address_ = listened;
  }
  admin_token_ = random_token();
  write_admin_file();
  if (!config_.metrics.address.empty()) {
    metrics_ = std::make_unique<MetricsServer>(
        config_.metrics.address, [this] { return render_metrics(inspect()); }, log_);
    try {
      metrics_->start();
    } catch (...) {
      stop();
      throw;
    }
  }

  try {
    std::lock_guard ops(ops_mutex_);
    apply(initial_app_);
  } catch (...) {
    stop();
    throw;
  }
  initial_app_ = {};
  log_->info("master started in {} mode with {} service(s)", engine_->mode(), order_.size());
}

void Master::stop() {
  stopping_ = true;
  {
    std::lock_guard ops(ops_mutex_);
    if (stopped_ || !started_) return;
    stopped_ = true;
  }
  if (update_thread_.joinable()) update_thread_.join();
  {
    std::lock_guard ops(ops_mutex_);
    std::vector<std::string> all;
    {
      std::lock_guard state(state_mutex_);
      all.assign(order_.rbegin(), order_.rend());
    }
    stop_services(all);
  }
  if (metrics_) metrics_->stop();
  if (api_) api_->stop();
  std::error_code ec;
  fs::remove(workdir_ / kAdminFile, ec);
  log_->info("master stopped");
}

void Master::write_admin_file() {
  const fs::path file = workdir_ / kAdminFile;
  fs::create_directories(file.parent_path());
  nlohmann::json admin = {{"address", instance_api_address_},
                          {"username", kAdminUser},
                          {"password", admin_token_},
                          {"pid", ::getpid()}};
  fs::path temp = file;
  temp += ".tmp";
  std::error_code ec;
  fs::remove(temp, ec);
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + temp.string() + ": " + strerror(errno));
  std::string text = admin.dump() + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot write " + temp.string() + ": " + strerror(errno));
  fs::rename(temp, file);
}

// ---- services ----

void Master::apply(const AppConfig& target) {
  std::vector<RunningService> running;
  {
    std::lock_guard state(state_mutex_);
    for (const auto& name : order_) {
      const auto& service = services_.at(name);
      running.push_back({service->info, service->volumes});
    }
  }
  UpdatePlan plan = plan_update(running, target);
  std::reverse(plan.stop.begin(), plan.stop.end());
  stop_services(plan.stop);
  {
    std::lock_guard state(state_mutex_);
    app_ = target;
  }
  // Every new service is known before any of their instances runs: a service calls the API
  // for another one (the function manager for its runtimes) as soon as it starts.
  std::vector<std::shared_ptr<Service>> starting;
  try {
    for (const auto& info : plan.start) starting.push_back(register_service(info, target));
  } catch (...) {
    stop_services(names_of(starting));
    throw;
  }
  for (std::size_t i = 0; i < starting.size(); ++i) {
    try {
      start_instances(*starting[i]);
    } catch (...) {
      stop_services(names_of(std::vector<std::shared_ptr<Service>>(
          starting.begin() + static_cast<std::ptrdiff_t>(i) + 1, starting.end())));
      throw;
    }
  }
  std::lock_guard state(state_mutex_);
  std::vector<std::string> order;
  for (const auto& service : target.services) {
    if (services_.count(service.name)) order.push_back(service.name);
  }
  order_ = std::move(order);
}

std::vector<std::string> Master::names_of(const std::vector<std::shared_ptr<Service>>& services) {
  std::vector<std::string> names;
  for (const auto& service : services) names.push_back(service->info.name);
  return names;
}

std::shared_ptr<Master::Service> Master::register_service(const ServiceInfo& info,
                                                          const AppConfig& app) {
  auto service = std::make_shared<Service>();
  service->info = info;
  service->volumes = volumes_of(app, info);
  service->token = random_token();
  engine_->setup_service(info, app.volumes);
  std::lock_guard state(state_mutex_);
  services_[info.name] = service;
  order_.push_back(info.name);
  return service;
}

void Master::start_instances(Service& service) {
  const ServiceInfo& info = service.info;
  try {
    for (int i = 0; i < info.replica; ++i) {
      auto instance = std::make_shared<InstanceSupervisor>(
          *engine_, make_spec(service, replica_name(info.name, i), service.token, {}), log_);
      instance->start();
      std::lock_guard state(state_mutex_);
      service.instances.push_back(std::move(instance));
    }
  } catch (const std::exception& e) {
    log_->error("service {} failed to start: {}", info.name, e.what());
    stop_services({info.name});
    throw std::runtime_error("service " + info.name + " failed to start: " + e.what());
  }
  log_->info("service {} started ({} instance(s))", info.name, info.replica);
}

void Master::stop_services(const std::vector<std::string>& names) {
  std::vector<std::shared_ptr<Service>> stopping;
  std::vector<std::shared_ptr<InstanceSupervisor>> instances;
  {
    std::lock_guard state(state_mutex_);
    for (const auto& name : names) {
      auto it = services_.find(name);
      if (it == services_.end()) continue;
      it->second->stopping = true;
      stopping.push_back(it->second);
      instances.insert(instances.end(), it->second->instances.begin(), it->second->instances.end());
    }
  }
  stop_instances(instances);
  {
    // Only now are the tokens revoked: a service that is stopping may still call the API, e.g. to
    // stop the instances it started.
    std::lock_guard state(state_mutex_);
    for (const auto& service : stopping) {
      const auto& name = service->info.name;
      if (auto it = services_.find(name); it != services_.end() && it->second == service) {
        services_.erase(it);
        order_.erase(std::remove(order_.begin(), order_.end(), name), order_.end());
      }
    }
  }
  for (const auto& service : stopping) {
    try {
      engine_->teardown_service(service->info.name);
    } catch (const std::exception& e) {
      log_->warn("service {}: cleaning up failed: {}", service->info.name, e.what());
    }
    log_->info("service {} stopped", service->info.name);
  }
}

void Master::stop_instances(const std::vector<std::shared_ptr<InstanceSupervisor>>& instances) {
  if (instances.size() == 1) {
    instances.front()->stop(config_.grace);
    return;
  }
  std::vector<std::thread> threads;
  threads.reserve(instances.size());
  for (const auto& instance : instances) {
    threads.emplace_back([this, instance] { instance->stop(config_.grace); });
  }
  for (auto& thread : threads) thread.join();
}

InstanceSpec Master::make_spec(const Service& service, const std::string& instance,
                               const std::string& token,
                               const std::map<std::string, std::string>& extra_env) const {
  InstanceSpec spec;
  spec.service = service.info.name;
  spec.instance = instance;
  spec.info = service.info;
  spec.env.assign(service.info.env.begin(), service.info.env.end());
  std::vector<std::pair<env::Variable, std::string>> system = {
      {env::kHostOs, host_os()},
      {env::kHostId, host_id_},
      {env::kMasterApiAddress, engine_->instance_api_address(instance_api_address_)},
      {env::kMasterApiVersion, std::string(env::kDefaultApiVersion)},
      {env::kServiceMode, std::string(engine_->mode())},
      {env::kServiceName, service.info.name},
      {env::kServiceInstanceName, instance},
      {env::kServiceToken, token},
  };
  for (auto& entry : env::export_both_names(system)) spec.env.push_back(std::move(entry));
  spec.env.insert(spec.env.end(), extra_env.begin(), extra_env.end());
  return spec;
}

std::shared_ptr<Master::Service> Master::find_service(const std::string& name) const {
  std::lock_guard state(state_mutex_);
  auto it = services_.find(name);
  return it == services_.end() ? nullptr : it->second;
}

std::shared_ptr<InstanceSupervisor> Master::find_instance(const Service& service,
                                                          const std::string& instance) const {
  std::lock_guard state(state_mutex_);
  return find_instance_locked(service, instance);
}

std::shared_ptr<InstanceSupervisor> Master::find_instance_locked(const Service& service,
                                                                 const std::string& instance) {
  for (const auto& candidate : service.instances) {
    if (candidate->name() == instance) return candidate;
  }
  return nullptr;
}

std::shared_ptr<Master::Service> Master::require_service(const std::string& name) const {
  auto service = find_service(name);
  if (!service) throw std::invalid_argument("service '" + name + "' not found");
  return service;
}

std::shared_ptr<InstanceSupervisor> Master::require_instance(const Service& service,
                                                             const std::string& instance) const {
  auto found = find_instance(service, instance);
  if (!found) {
    throw std::invalid_argument("instance '" + instance + "' of service '" + service.info.name +
                                "' not found");
  }
  return found;
}

// ---- API ----

bool Master::authenticate(const std::string& username, const std::string& password) {
  if (password.empty()) return false;
  if (username == kAdminUser) return equal_tokens(password, admin_token_);
  auto service = find_service(username);
  return service && equal_tokens(password, service->token);
}

nlohmann::json Master::inspect() {
  const BuildInfo build = build_info();
  api::Software software;
  software.os = host_os();
  software.arch = host_arch();
  software.pwd = workdir_.string();
  software.mode = std::string(engine_->mode());
  software.compiler = build.compiler;
  software.bin_version = build.version;
  software.git_revision = build.git_revision;

  struct Listed {
    std::string name;
    std::string image;
    std::vector<std::shared_ptr<InstanceSupervisor>> instances;
  };
  std::vector<Listed> services;
  nlohmann::json volumes = nlohmann::json::array();
  std::string error;
  {
    std::lock_guard state(state_mutex_);
    software.conf_version = app_.version;
    for (const auto& name : order_) {
      const auto& service = *services_.at(name);
      services.push_back({name, service.info.image, service.instances});
    }
    for (const auto& volume : app_.volumes) {
      nlohmann::json entry = {{"name", volume.name}, {"path", volume.path}};
      if (!volume.meta.version.empty()) entry["version"] = volume.meta.version;
      volumes.push_back(std::move(entry));
    }
    error = error_;
  }

  nlohmann::json result;
  if (!error.empty()) result["error"] = error;
  result["time"] = api::to_rfc3339(std::chrono::system_clock::now());
  result["software"] = software;
  result["hardware"] = host_stats_.collect();
  auto& service_list = result["services"] = nlohmann::json::array();
  for (const auto& service : services) {
    nlohmann::json entry = {
        {"name", service.name}, {"image", service.image}, {"instances", nlohmann::json::array()}};
    for (const auto& instance : service.instances) {
      entry["instances"].push_back(instance->inspect());
    }
    service_list.push_back(std::move(entry));
  }
  result["volumes"] = std::move(volumes);
  return result;
}

std::string Master::available_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("cannot open a socket: ") + strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::string reason = strerror(errno);
    ::close(fd);
    throw std::runtime_error("no port available: " + reason);
  }
  ::close(fd);
  return std::to_string(ntohs(address.sin_port));
}

void Master::authorize_instance_call(const std::string& caller, const Service& service,
                                     const std::string& instance) const {
  if (caller == kAdminUser) return;
  if (service.info.replica > 0) {
    throw ApiForbidden("service '" + service.info.name + "' runs " +
                       std::to_string(service.info.replica) +
                       " static instance(s): only the master and the admin manage its "
                       "instances; a service starts and stops instances of services with "
                       "replica 0 only");
  }
  std::lock_guard state(state_mutex_);
  auto owner = service.started_by.find(instance);
  if (owner != service.started_by.end() && owner->second != caller &&
      find_instance_locked(service, instance)) {
    throw ApiForbidden("instance '" + instance + "' of service '" + service.info.name +
                       "' was started by '" + owner->second +
                       "': only it and the admin may start or stop it");
  }
}

void Master::start_instance(const std::string& caller, const std::string& service_name,
                            const std::string& instance_name,
                            const std::map<std::string, std::string>& env) {
  if (!config::regex_full_match(instance_name, kInstancePattern)) {
    throw std::invalid_argument("instance name '" + instance_name + "' does not match " +
                                kInstancePattern);
  }
  check_instance_env(env);
  if (stopping_) throw std::runtime_error("the master is stopping");
  auto service = require_service(service_name);
  // One start of this service's instances at a time, so that a name never runs twice.
  std::lock_guard start(service->start_mutex);
  authorize_instance_call(caller, *service, instance_name);
  const bool is_static = is_static_instance(service->info, instance_name);
  std::shared_ptr<InstanceSupervisor> existing;
  {
    std::lock_guard state(state_mutex_);
    if (service->stopping) throw std::runtime_error("service '" + service_name + "' is stopping");
    existing = find_instance_locked(*service, instance_name);
    if (existing) std::erase(service->instances, existing);
  }
  if (existing) existing->stop(config_.grace);
  // A static instance started again by the admin is the service's own again, token included.
  auto instance = std::make_shared<InstanceSupervisor>(
      *engine_, make_spec(*service, instance_name, is_static ? service->token : "", env), log_);
  instance->start();
  {
    std::lock_guard state(state_mutex_);
    if (!service->stopping) {
      service->instances.push_back(instance);
      if (is_static) {
        service->started_by.erase(instance_name);
      } else {
        service->started_by[instance_name] = caller;
      }
      return;
    }
  }
  // Its service began to stop meanwhile, without it.
  instance->stop(config_.grace);
  throw std::runtime_error("service '" + service_name + "' is stopping");
}

void Master::stop_instance(const std::string& caller, const std::string& service_name,
                           const std::string& instance_name) {
  // Every instance is being stopped already.
  if (stopping_) return;
  auto service = require_service(service_name);
  authorize_instance_call(caller, *service, instance_name);
  std::shared_ptr<InstanceSupervisor> instance;
  {
    std::lock_guard state(state_mutex_);
    if (service->stopping) return;  // it stops with its service
    instance = find_instance_locked(*service, instance_name);
  }
  if (!instance) {
    throw std::invalid_argument("instance '" + instance_name + "' of service '" + service_name +
                                "' not found");
  }
  instance->stop(config_.grace);
  // A static instance stays listed (as exited); a dynamic one is gone, unless a start of the same
  // name replaced it meanwhile.
  if (!is_static_instance(service->info, instance_name)) {
    std::lock_guard state(state_mutex_);
    if (std::erase(service->instances, instance) > 0) service->started_by.erase(instance_name);
  }
  log_->info("instance {} of service {} stopped through the API by {}", instance_name, service_name,
             caller);
}

nlohmann::json Master::restart_service(const std::string& caller, const std::string& service_name) {
  if (caller != kAdminUser) {
    throw ApiForbidden("only the admin may restart a service ('" + caller + "' may not)");
  }
  if (stopping_) throw std::runtime_error("the master is stopping");
  auto service = require_service(service_name);
  std::lock_guard start(service->start_mutex);
  std::vector<std::shared_ptr<InstanceSupervisor>> old;
  {
    std::lock_guard state(state_mutex_);
    if (service->stopping) throw std::runtime_error("service '" + service_name + "' is stopping");
    old = service->instances;
  }
  if (old.empty()) {
    throw std::runtime_error("service '" + service_name + "' has no instance to restart");
  }
  nlohmann::json result = nlohmann::json::array();
  for (const auto& existing : old) {
    {
      std::lock_guard state(state_mutex_);
      // Stopped or replaced through the API meanwhile.
      if (std::erase(service->instances, existing) == 0) continue;
    }
    existing->stop(config_.grace);
    auto instance = std::make_shared<InstanceSupervisor>(*engine_, existing->spec(), log_);
    instance->start();
    bool service_stopping = false;
    {
      std::lock_guard state(state_mutex_);
      service_stopping = service->stopping;
      if (!service_stopping) service->instances.push_back(instance);
    }
    if (service_stopping) {
      instance->stop(config_.grace);
      throw std::runtime_error("service '" + service_name + "' is stopping");
    }
    log_->info("instance {} of service {} restarted through the API", existing->name(),
               service_name);
    result.push_back(instance->inspect());
  }
  return result;
}

void Master::stop_master(const std::string& caller) {
  if (caller != kAdminUser) {
    throw ApiForbidden("only the admin may stop the master ('" + caller + "' may not)");
  }
  if (!request_stop_) throw std::runtime_error("this master cannot be stopped through its API");
  log_->info("stop requested through the API");
  request_stop_();
}

void Master::report_instance(const std::string& caller, const std::string& service_name,
                             const std::string& instance_name, const nlohmann::json& report) {
  if (!report.is_object()) throw std::invalid_argument("a report must be a JSON object");
  if (caller != kAdminUser && caller != service_name) {
    throw ApiForbidden("service '" + caller + "' cannot report for service '" + service_name +
                       "': a service reports for its own instances only");
  }
  require_instance(*require_service(service_name), instance_name)->report(report);
}

// ---- updates ----

void Master::set_error(std::string error) {
  std::lock_guard state(state_mutex_);
  error_ = std::move(error);
}

void Master::authorize_update(const std::string& caller) const {
  if (caller == kAdminUser) return;
  if (const auto service = find_service(caller)) {
    const auto& named = config_.update.services;
    if (image_base_name(service->info.image) == kUpdateAgentImage ||
        std::find(named.begin(), named.end(), caller) != named.end()) {
      return;
    }
  }
  throw ApiForbidden("service '" + caller +
                     "' may not update the node: an update replaces the application or the "
                     "master binary, so only the admin, services whose image is " +
                     kUpdateAgentImage + " and the services named in conf.yml update.services may");
}

void Master::check_update_writers(const std::string& caller, const UpdateSource& source) const {
  AppConfig app;
  {
    std::lock_guard state(state_mutex_);
    app = app_;
  }
  for (const auto& service : app.services) {
    if (service.name == caller) continue;
    for (const auto& mount : service.mounts) {
      const auto* volume = mount.readonly ? nullptr : app.find_volume(mount.name);
      const auto host = volume ? resolve_inside(workdir_.string(), volume->path) : std::nullopt;
      if (!host) continue;
      std::error_code ec;
      const fs::path dir = fs::weakly_canonical(*host, ec);
      if (ec) continue;
      const fs::path inside = source.resolved().lexically_relative(dir);
      if (inside.empty() || *inside.begin() == "..") continue;
      throw ApiForbidden("update path '" + source.requested() + "' is in volume '" + volume->name +
                         "' (" + volume->path + "), which service '" + service.name +
                         "' mounts writable: an update is read only from where no service "
                         "but the caller can write");
    }
  }
}

void Master::update(const std::string& caller, const api::UpdateRequest& request) {
  authorize_update(caller);
  if (request.type != "APP" && request.type != "MST") {
    throw std::invalid_argument("update type must be APP or MST, not '" + request.type + "'");
  }
  // Refused here, before anything is read or stopped: a path outside the update directory, or
  // one that another service could have written.
  UpdateSource source = open_update_source(workdir_, request.path);
  check_update_writers(caller, source);
  std::string text;
  if (request.type == "APP") text = source.read_all(kMaxAppFileSize);
  std::uint64_t generation = 0;
  {
    std::lock_guard state(update_state_mutex_);
    if (updating_) throw std::runtime_error("an update is already in progress");
    updating_ = true;
    generation = ++update_generation_;
  }
  std::lock_guard ops(ops_mutex_);
  if (stopped_) {
    std::lock_guard state(update_state_mutex_);
    updating_ = false;
    throw std::runtime_error("the master is stopping");
  }
  if (update_thread_.joinable()) update_thread_.join();
  ota_log_.append(ota_step::kReceived, request.type, request.trace);
  log_->info("update {} from {} received (trace '{}')", request.type, request.path, request.trace);
  update_thread_ =
      std::thread([this, request, generation, source = std::move(source), text = std::move(text)] {
        run_update(request, source, text);
        // A master update that handed over to the new binary logs no final step here.
        std::lock_guard state(update_state_mutex_);
        if (update_generation_ == generation) updating_ = false;
      });
}

void Master::finish_update(const char* step, const std::string& type, const std::string& trace,
                           const std::string& detail) {
  std::lock_guard state(update_state_mutex_);
  ota_log_.append(step, type, trace, detail);
  updating_ = false;
}

void Master::run_update(const api::UpdateRequest& request, const UpdateSource& source,
                        const std::string& text) {
  std::string failure;
  try {
    if (request.type == "MST") {
      run_master_update(request, source);
    } else {
      run_app_update(request, text);
    }
    return;
  } catch (const config::ConfigError& e) {
    failure = describe_update_error(e);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  log_->error("update failed: {}", failure);
  set_error("update failed: " + failure);
  finish_update(ota_step::kFailure, request.type, request.trace, failure);
}

void Master::run_app_update(const api::UpdateRequest& request, const std::string& text) {
  const std::string& type = request.type;
  ota_log_.append(ota_step::kUpdating, type, request.trace);

  // Check everything that can be checked before anything stops.
  std::vector<std::string> unknown;
  AppConfig target = parse_app_config(text, request.path, &unknown);
  check_replacement(target, request.path);
  for (const auto& key : unknown) log_->warn("{}: {}: unknown key, ignored", request.path, key);
  engine_->prepare(target);

  std::unique_lock ops(ops_mutex_);
  if (stopped_) throw std::runtime_error("the master is stopping");
  AppConfig previous;
  {
    std::lock_guard state(state_mutex_);
    previous = app_;
  }
  // Throws with application.yml and every service untouched when the new file cannot be written.
  FileReplacement app_file(workdir_ / kAppConfigFile, text);
  try {
    apply(target);
  } catch (const std::exception& e) {
    const std::string reason = e.what();
    log_->error("update to version '{}' failed, rolling back: {}", target.version, reason);
    ota_log_.append(ota_step::kRollingBack, type, request.trace, reason);
    std::string problem;
    try {
      app_file.restore();
    } catch (const std::exception& again) {
      problem = again.what();
    }
    try {
      apply(previous);
    } catch (const std::exception& again) {
      problem += (problem.empty() ? "" : "; ") + std::string(again.what());
    }
    if (!problem.empty()) {
      log_->error("rolling back failed: {}", problem);
      set_error("update failed: " + reason + "; rollback failed: " + problem);
      finish_update(ota_step::kFailure, type, request.trace,
                    reason + "; rollback failed: " + problem);
      return;
    }
    set_error("update failed, rolled back: " + reason);
    finish_update(ota_step::kRolledBack, type, request.trace, reason);
    return;
  }
  set_error({});
  finish_update(ota_step::kUpdated, type, request.trace);
  log_->info("application updated to version '{}'", target.version);
}

void Master::run_master_update(const api::UpdateRequest& request, const UpdateSource& source) {
  ota_log_.append(ota_step::kUpdating, request.type, request.trace);
  if (binary_.empty() || !request_reexec_) {
    throw std::runtime_error("this master cannot replace its binary");
  }
  fs::path staged = binary_;
  staged += ".new";
  source.copy_to(staged, 0755);
  if (std::string problem = check_master_binary(staged, workdir_, kCheckTimeout);
      !problem.empty()) {
    std::error_code ec;
    fs::remove(staged, ec);
    throw std::runtime_error(request.path + ": " + problem);
  }
  MasterUpdateMarker marker;
  marker.trace = request.trace;
  marker.stage = "restarting";
  marker.binary = binary_;
  marker.backup = binary_.parent_path() / "baetyl.old";
  marker.timeout = config_.update.timeout;
  marker.grace = config_.grace;
  install_binary(staged, marker.binary, marker.backup);
  marker.save(workdir_ / kMasterUpdateFile);
  ota_log_.append(ota_step::kRestarting, request.type, request.trace);
  log_->info("master binary updated from {}; restarting", request.path);
  request_reexec_();
}

void Master::finish_master_update() {
  const fs::path file = workdir_ / kMasterUpdateFile;
  auto marker = MasterUpdateMarker::load(file);
  if (!marker) return;
  if (marker->stage == "restarting") {
    ota_log_.append(ota_step::kRestarted, "MST", marker->trace);
    ota_log_.append(ota_step::kUpdated, "MST", marker->trace);
    log_->info("master update finished: version {}", build_info().version);
  } else {
    // The error first: whoever follows ota.log may inspect as soon as the step is written.
    set_error("master update failed, rolled back: " + marker->error);
    ota_log_.append(ota_step::kRolledBack, "MST", marker->trace, marker->error);
    log_->warn("master update rolled back: {}", marker->error);
  }
  MasterUpdateMarker::remove(file);
}

}  // namespace baetyl::master
