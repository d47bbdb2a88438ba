#pragma once
// conf.yml: the master's own configuration (the docs' "Master Configuration"). It cannot change
// during an application update.
#include <chrono>
#include <string>
#include <vector>

#include "baetyl/config/reader.h"
#include "baetyl/log/logger.h"

namespace baetyl::master {

inline constexpr const char* kMasterConfigFile = "etc/baetyl/conf.yml";
inline constexpr const char* kDefaultLogFile = "var/log/baetyl/baetyl.log";

struct ServerConfig {
  // Default: BAETYL_MASTER_API_ADDRESS, else unix:///var/run/baetyl.sock. A unix path that is not
  // absolute is relative to the work directory.
  std::string address;
  std::chrono::milliseconds timeout{30000};  // read/write timeout of one API request
};

struct DockerConfig {
  std::string api_version;  // e.g. "1.38", for "client version is too new"; empty: negotiate
  std::chrono::milliseconds pull_timeout{10 * 60 * 1000};  // one image pull
  // The cgroup the containers' cgroups go in (HostConfig.CgroupParent): a name at the root of
  // the hierarchy, /<name> with Docker's cgroupfs driver, <name>.slice with systemd's. Empty:
  // Docker's own (`docker`, or `system.slice`), which every container of the daemon shares.
  std::string cgroup_parent = "baetyl";
};

struct UpdateConfig {
  // How long a new master binary has to start every service after a master update before the
  // previous binary is put back.
  std::chrono::milliseconds timeout{std::chrono::minutes(2)};
  // Services that may call PUT /v1/system/update besides the admin and the services whose image
  // is the agent's (kUpdateAgentImage).
  std::vector<std::string> services;
};

// The image (as image_base_name gives it) of the services that may update the node by default.
inline constexpr const char* kUpdateAgentImage = "baetyl-agent";

struct MetricsConfig {
  // tcp://host:port of the Prometheus endpoint (GET /metrics); empty: no endpoint.
  std::string address;
};

struct MasterConfig {
  std::string mode = "docker";  // docker, native
  std::chrono::milliseconds grace{30000};
  ServerConfig server;
  log::LoggerConfig logger;  // logger.path defaults to kDefaultLogFile
  DockerConfig docker;
  UpdateConfig update;
  MetricsConfig metrics;
};

void describe(config::Reader& r, ServerConfig& c);
void describe(config::Reader& r, DockerConfig& c);
void describe(config::Reader& r, UpdateConfig& c);
void describe(config::Reader& r, MetricsConfig& c);
void describe(config::Reader& r, MasterConfig& c);

// The defaults of conf.yml: the member initialisers, server.address from BAETYL_MASTER_API_ADDRESS
// (else the platform's default) and logger.path kDefaultLogFile.
MasterConfig master_config_defaults();

// Reads conf.yml; a missing file means defaults. Throws config::ConfigError.
MasterConfig load_master_config(const std::string& path,
                                std::vector<std::string>* unknown_keys = nullptr);

}  // namespace baetyl::master
