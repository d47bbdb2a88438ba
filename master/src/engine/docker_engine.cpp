#include "engine/docker_engine.h"

#include <set>
#include <stdexcept>
#include <thread>

#include <spdlog/sinks/null_sink.h>

#include "engine/docker_container.h"
#include "engine/docker_instance.h"

namespace baetyl::master {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Progress lines of a pull (bytes downloaded, extracted) are logged at most this often.
constexpr auto kPullProgressEvery = 5s;

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host.starts_with("127.") || host == "[::1]" || host == "::1";
}

std::string short_id(const std::string& id) { return id.substr(0, 12); }

// The work directory with symlinks resolved: one directory is one owner, whatever path named it.
std::string weakly_canonical_or_given(const fs::path& workdir) {
  std::error_code ec;
  auto canonical = fs::weakly_canonical(workdir, ec);
  return ec ? workdir.string() : canonical.string();
}

}  // namespace

DockerEngine::DockerEngine(DockerEngineOptions options)
    : options_(std::move(options)),
      logger_(options_.logger ? options_.logger
                              : std::make_shared<spdlog::logger>(
                                    "docker", std::make_shared<spdlog::sinks::null_sink_mt>())),
      client_(options_.host),
      workdir_label_(weakly_canonical_or_given(options_.workdir)) {}

DockerEngine::~DockerEngine() = default;

void DockerEngine::connect() {
  DockerResponse response;
  try {
    response = client_.call("GET", "/version", std::nullopt, 10s, false);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(e.what()) + " (is the Docker daemon running?)");
  }
  if (!response.ok()) {
    throw std::runtime_error("Docker " + options_.host + ": GET /version: " + response.message());
  }
  auto version = nlohmann::json::parse(response.body, nullptr, false);
  try {
    client_.set_api_version(negotiate_api_version(version, options_.api_version));
  } catch (const std::exception& e) {
    throw std::runtime_error("Docker " + options_.host + ": " + e.what());
  }
  logger_->info("Docker {} at {}: API version {}", version.value("Version", std::string("?")),
                options_.host, client_.api_version());
  settle_cgroup_parent();
}

void DockerEngine::settle_cgroup_parent() {
  if (options_.cgroup_parent.empty()) return;
  auto info = client_.call("GET", "/info", std::nullopt, 10s);
  auto json = info.ok() ? nlohmann::json::parse(info.body, nullptr, false) : nlohmann::json();
  const std::string driver = json.is_object() ? json.value("CgroupDriver", std::string()) : "";
  if (driver.empty()) {
    throw std::runtime_error("Docker " + options_.host +
                             ": GET /info names no cgroup driver, which docker.cgroup_parent '" +
                             options_.cgroup_parent + "' needs: " +
                             (info.ok() ? std::string("no CgroupDriver") : info.message()));
  }
  cgroup_parent_ = docker_cgroup_parent(options_.cgroup_parent, driver);
  logger_->info("containers go in the cgroup {} (Docker's cgroup driver {})", cgroup_parent_,
                driver);
}

std::string DockerEngine::instance_api_address(const std::string& listened) const {
  constexpr std::string_view kTcp = "tcp://";
  if (!listened.starts_with(kTcp)) return std::string("unix://") + kContainerApiSocket;
  const std::string authority = listened.substr(kTcp.size());
  const auto colon = authority.rfind(':');
  const std::string host = authority.substr(0, colon);
  if (is_loopback_host(host) && !warned_loopback_.exchange(true)) {
    logger_->warn(
        "the master API listens on {}, which containers cannot reach: listen on "
        "0.0.0.0 or the Docker bridge's address for services in containers to call it",
        listened);
  }
  return "tcp://host.docker.internal:" + authority.substr(colon + 1);
}

void DockerEngine::clean_leftovers() {
  const nlohmann::json filters = {{"label",
                                   {std::string(kDockerLabelBaetyl) + "=baetyl",
                                    std::string(kDockerLabelWorkdir) + "=" + workdir_label_}}};
  auto containers =
      client_.call_json("GET", "/containers/json?all=1&filters=" + url_encode(filters.dump()));
  if (!containers.is_array()) return;
  for (const auto& container : containers) {
    const std::string id = container.value("Id", "");
    std::string name = id;
    if (container.contains("Names") && container["Names"].is_array() &&
        !container["Names"].empty()) {
      name = container["Names"][0].get<std::string>();
      if (name.starts_with('/')) name.erase(0, 1);
    }
    const auto labels = container.value("Labels", nlohmann::json::object());
    logger_->warn("removing container {} ({}) of service {} left by a previous master", name,
                  short_id(id), labels.value(kDockerLabelService, std::string("?")));
    try {
      remove_container(client_, id);
    } catch (const std::exception& e) {
      logger_->error("cannot remove container {}: {}", name, e.what());
    }
  }
}

void DockerEngine::prepare(const AppConfig& app) {
  std::vector<std::string> errors;
  for (std::size_t i = 0; i < app.services.size(); ++i) {
    const auto& service = app.services[i];
    const std::string key = "services[" + std::to_string(i) + "].";
    for (const auto& problem : check_docker_keys(service)) errors.push_back(key + problem);
    try {
      service_binds(service, app.volumes, options_.workdir);
    } catch (const std::invalid_argument& e) {
      errors.push_back(key + e.what());
    }
  }
  if (!errors.empty()) {
    std::string message;
    for (const auto& error : errors) message += (message.empty() ? "" : "\n") + error;
    throw std::runtime_error(message);
  }

  // Every missing image is pulled at once, so one slow or failing pull delays no other.
  std::map<std::string, std::string> failures;  // image -> reason
  std::set<std::string> images;
  for (const auto& service : app.services) images.insert(service.image);
  std::mutex failures_mutex;
  std::vector<std::thread> pulls;
  for (const auto& image : images) {
    pulls.emplace_back([&, image] {
      try {
        ensure_image(image);
      } catch (const std::exception& e) {
        std::lock_guard lock(failures_mutex);
        failures[image] = e.what();
      }
    });
  }
  for (auto& pull : pulls) pull.join();
  {
    // Only for the static instances about to start: an instance started on demand later pulls.
    std::lock_guard lock(mutex_);
    for (const auto& service : app.services) {
      auto failure = failures.find(service.image);
      if (service.replica > 0 && failure != failures.end()) {
        failed_pulls_[service.image] = failure->second;
      }
    }
  }
  for (const auto& service : app.services) {
    auto failure = failures.find(service.image);
    if (failure == failures.end()) continue;
    if (service.replica > 0) {
      logger_->error(
          "service '{}': image '{}' is neither local nor pullable: {}; the other "
          "services start, this one is tried again by its restart policy",
          service.name, service.image, failure->second);
    } else {
      logger_->warn(
          "service '{}': image '{}' is neither local nor pullable: {}; its instances "
          "cannot be started on demand until it is",
          service.name, service.image, failure->second);
    }
  }
}

void DockerEngine::setup_service(const ServiceInfo& service,
                                 const std::vector<VolumeInfo>& volumes) {
  std::vector<std::string> binds;
  try {
    binds = service_binds(service, volumes, options_.workdir);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("service '" + service.name + "': " + e.what());
  }
  // Docker would create a missing bind source itself, owned by root; as in native mode the
  // master creates the volume directories.
  for (const auto& bind : binds) {
    const fs::path host = bind.substr(0, bind.find(':'));
    std::error_code ec;
    fs::create_directories(host, ec);
    if (ec) {
      throw std::runtime_error("service '" + service.name + "': cannot create " + host.string() +
                               ": " + ec.message());
    }
  }
  std::lock_guard lock(mutex_);
  binds_[service.name] = std::move(binds);
}

void DockerEngine::teardown_service(const std::string& service) {
  std::lock_guard lock(mutex_);
  binds_.erase(service);
}

std::vector<std::string> DockerEngine::binds_of(const std::string& service) const {
  std::lock_guard lock(mutex_);
  auto it = binds_.find(service);
  return it == binds_.end() ? std::vector<std::string>{} : it->second;
}

void DockerEngine::ensure_image(const std::string& image) {
  if (!is_image_reference(image)) throw std::runtime_error("not an image reference");
  auto local = client_.call("GET", "/images/" + image + "/json");
  if (local.ok()) return;
  if (local.status != 404) throw std::runtime_error("cannot look it up: " + local.message());

  logger_->info("pulling image {}", image);
  std::string error;
  auto last_progress = Clock::now() - kPullProgressEvery;
  auto response = client_.stream(
      "POST", "/images/create?" + image_pull_query(image),
      [&](std::string_view line) {
        auto json = nlohmann::json::parse(line, nullptr, false);
        if (!json.is_object()) return;
        if (json.contains("error")) {
          error = json["error"].is_string() ? json["error"].get<std::string>() : json.dump();
          return;
        }
        const std::string status = json.value("status", "");
        const std::string id = json.value("id", "");
        const std::string progress = json.value("progress", "");
        const std::string layer = id.empty() ? "" : id + ": ";
        if (progress.empty()) {
          logger_->info("pulling image {}: {}{}", image, layer, status);
        } else if (Clock::now() - last_progress >= kPullProgressEvery) {
          last_progress = Clock::now();
          logger_->info("pulling image {}: {}{} {}", image, layer, status, progress);
        }
      },
      options_.pull_timeout);
  if (!response.ok()) throw std::runtime_error("pull failed: " + response.message());
  if (!error.empty()) throw std::runtime_error("pull failed: " + error);
  logger_->info("image {} pulled", image);
}

void DockerEngine::ensure_network() {
  {
    std::lock_guard lock(mutex_);
    if (network_ready_) return;
  }
  auto found = client_.call("GET", std::string("/networks/") + kDockerNetwork);
  if (!found.ok()) {
    if (found.status != 404) {
      throw std::runtime_error(std::string("cannot look up the network ") + kDockerNetwork + ": " +
                               found.message());
    }
    const nlohmann::json body = {{"Name", kDockerNetwork},
                                 {"Driver", "bridge"},
                                 {"CheckDuplicate", true},
                                 {"Labels", {{kDockerLabelBaetyl, "baetyl"}}}};
    auto created = client_.call("POST", "/networks/create", body);
    // 409: another master created it meanwhile.
    if (!created.ok() && created.status != 409) {
      throw std::runtime_error(std::string("cannot create the network ") + kDockerNetwork + ": " +
                               created.message());
    }
    if (created.ok()) logger_->info("created the Docker network {} (bridge)", kDockerNetwork);
  }
  std::lock_guard lock(mutex_);
  network_ready_ = true;
}

std::string DockerEngine::create_container(const InstanceSpec& spec, const nlohmann::json& body) {
  const std::string what =
      "cannot start instance '" + spec.instance + "' of service '" + spec.service + "'";
  for (int attempt = 0;; ++attempt) {
    auto response =
        client_.call("POST", "/containers/create?name=" + url_encode(spec.instance), body);
    if (response.status == 201) {
      auto json = nlohmann::json::parse(response.body, nullptr, false);
      if (json.is_object() && json.contains("Id") && json["Id"].is_string()) {
        return json["Id"].get<std::string>();
      }
      throw std::runtime_error(what + ": unexpected answer to the create: " + response.body);
    }
    const std::string message = response.message();
    if (attempt > 0) throw std::runtime_error(what + ": " + message);
    if (response.status == 409) {
      // The name is taken: by a container of ours whose removal failed, or by a stranger's.
      auto holder = client_.call("GET", "/containers/" + url_encode(spec.instance) + "/json");
      if (!holder.ok()) continue;  // gone meanwhile
      auto json = nlohmann::json::parse(holder.body, nullptr, false);
      auto labels = json.is_object() ? json.value("Config", nlohmann::json::object())
                                           .value("Labels", nlohmann::json::object())
                                     : nlohmann::json::object();
      if (!labels.is_object()) labels = nlohmann::json::object();
      const std::string owner = labels.value(kDockerLabelWorkdir, std::string());
      if (labels.value(kDockerLabelBaetyl, std::string()) != "baetyl" || owner != workdir_label_) {
        throw std::runtime_error(what + ": the container name '" + spec.instance +
                                 "' is taken by a container " +
                                 (owner.empty() ? std::string("that no baetyl master started")
                                                : "of the master in " + owner) +
                                 "; instance names are container names, unique on the Docker host");
      }
      const std::string id = json.value("Id", "");
      logger_->warn("removing container {} of this master that still holds the name {}",
                    short_id(id), spec.instance);
      remove_container(client_, id);
      continue;
    }
    if (response.status == 404 && message.find("network") != std::string::npos) {
      {
        std::lock_guard lock(mutex_);
        network_ready_ = false;
      }
      ensure_network();
      continue;
    }
    if (response.status == 404) {
      throw InstanceUnavailable(what + ": image '" + spec.info.image + "': " + message);
    }
    throw std::runtime_error(what + ": " + message);
  }
}

std::unique_ptr<Instance> DockerEngine::start(const InstanceSpec& spec) {
  const std::string what =
      "cannot start instance '" + spec.instance + "' of service '" + spec.service + "'";
  std::optional<std::string> failed_pull;
  {
    // The first start after a failed pull of prepare() fails at once, so that it does not hold up
    // the services after it; the supervisor's next try pulls again, on its own thread.
    std::lock_guard lock(mutex_);
    if (auto it = failed_pulls_.find(spec.info.image); it != failed_pulls_.end()) {
      failed_pull = it->second;
      failed_pulls_.erase(it);
    }
  }
  if (failed_pull) {
    throw InstanceUnavailable(what + ": image '" + spec.info.image +
                              "' is neither local nor pullable: " + *failed_pull);
  }
  try {
    ensure_image(spec.info.image);
  } catch (const std::exception& e) {
    throw InstanceUnavailable(what + ": image '" + spec.info.image +
                              "' is neither local nor pullable: " + e.what());
  }
  ContainerContext context;
  context.workdir = workdir_label_;
  context.binds = binds_of(spec.service);
  context.api_socket = options_.api_socket;
  context.cgroup_parent = cgroup_parent_;
  nlohmann::json body;
  try {
    body = container_create_body(spec, context);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(what + ": " + e.what());
  }
  ensure_network();
  const std::string id = create_container(spec, body);
  try {
    auto started = client_.call("POST", "/containers/" + id + "/start");
    if (!started.ok() && started.status != 304) {
      throw std::runtime_error(what + ": " + started.message());
    }
  } catch (...) {
    try {
      remove_container(client_, id);
    } catch (const std::exception& e) {
      logger_->error("cannot remove container {} of instance {}: {}", short_id(id), spec.instance,
                     e.what());
    }
    throw;
  }
  logger_->info("instance {} of service {} started: container {}, image {}", spec.instance,
                spec.service, short_id(id), spec.info.image);
  return std::make_unique<DockerInstance>(spec.instance, id, client_, logger_);
}

}  // namespace baetyl::master
