#pragma once
// Docker mode: every instance is a container named after it on the `baetyl` bridge network,
// created through the Docker Engine API (docker_client.h) from the service's image.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "engine/docker_client.h"
#include "engine/engine.h"

namespace baetyl::master {

struct DockerEngineOptions {
  std::filesystem::path workdir;  // the master's work directory (absolute)
  // The master API socket on the host, bound read-only into every container at
  // /var/run/baetyl.sock; empty when the API listens on TCP.
  std::filesystem::path api_socket;
  std::string host = kDefaultDockerHost;  // DOCKER_HOST's forms unix:// and tcp://
  // The API version to use instead of negotiating one (conf.yml docker.api_version).
  std::optional<std::string> api_version;
  // How long one image pull may take.
  std::chrono::milliseconds pull_timeout{std::chrono::minutes(10)};
  // The cgroup the containers go in, one name (conf.yml docker.cgroup_parent); empty: Docker's.
  std::string cgroup_parent;
  std::shared_ptr<spdlog::logger> logger;  // null: log nothing
};

class DockerEngine final : public Engine {
 public:
  explicit DockerEngine(DockerEngineOptions options);
  ~DockerEngine() override;

  // Asks the daemon for its version and settles the API version every later call uses (see
  // negotiate_api_version), then for its cgroup driver, which gives the containers' cgroup
  // parent its form (docker_cgroup_parent). Throws std::runtime_error saying why when the daemon
  // cannot be reached (no socket, refused, not answering) or its version does not fit.
  void connect();
  const std::string& api_version() const { return client_.api_version(); }
  // HostConfig.CgroupParent of the containers, settled by connect().
  const std::string& cgroup_parent() const { return cgroup_parent_; }

  std::string_view mode() const override { return "docker"; }
  // unix:///var/run/baetyl.sock for a unix socket; for tcp://host:port the same port on
  // host.docker.internal (which each container maps to the host's gateway address).
  std::string instance_api_address(const std::string& listened) const override;
  // Removes (force) every container labelled baetyl=baetyl and baetyl.workdir=<this work
  // directory>: what a master of this work directory left behind.
  void clean_leftovers() override;
  // Checks each service's ports, devices, resources and mounts as Docker will read them (a
  // problem is a line "services[<i>].<key>: <reason>"; all are thrown together), and pulls the
  // images that are not local, all at once, each within pull_timeout. An image that cannot be had
  // is an error in the log naming the service, not an exception: the service is reported and
  // retried when it starts, and the others run.
  void prepare(const AppConfig& app) override;
  // Remembers the service's binds and creates the volume directories they bind.
  void setup_service(const ServiceInfo& service, const std::vector<VolumeInfo>& volumes) override;
  void teardown_service(const std::string& service) override;
  // Pulls the image when it is not local (InstanceUnavailable when that fails, and at once,
  // without pulling, for the first start after prepare() failed to pull it), creates the `baetyl`
  // network when it is missing, creates the container (removing first a container of this master
  // that holds the name, a leftover of a failed removal), starts it.
  std::unique_ptr<Instance> start(const InstanceSpec& spec) override;

  const DockerClient& client() const { return client_; }

 private:
  // Pulls `image` when it is not local. Throws std::runtime_error with the reason it cannot be
  // had.
  void ensure_image(const std::string& image);
  void ensure_network();
  void settle_cgroup_parent();
  std::string create_container(const InstanceSpec& spec, const nlohmann::json& body);
  std::vector<std::string> binds_of(const std::string& service) const;

  DockerEngineOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  DockerClient client_;
  // The baetyl.workdir label of this master's containers: the work directory, symlinks resolved.
  const std::string workdir_label_;
  std::string cgroup_parent_;
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<std::string>> binds_;  // per service
  std::map<std::string, std::string> failed_pulls_;  // image -> why prepare() could not pull it
  bool network_ready_ = false;
  mutable std::atomic<bool> warned_loopback_{false};
};

}  // namespace baetyl::master
