#pragma once
// application.yml: the services the master runs and the volumes they use (the docs' "Application
// Configuration"). Defaults are the member initialisers; validation lives in describe() and
// validate_app_config().
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "baetyl/config/reader.h"
#include "baetyl/config/units.h"

namespace baetyl::master {

// Names of services, volumes and mounts.
inline constexpr const char* kNamePattern = "[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}";

// Where the agent downloaded a volume from (the original's volume meta); the master only shows
// the version in inspect.
struct VolumeMeta {
  std::string url;
  std::string md5;
  std::string version;
  bool operator==(const VolumeMeta&) const = default;
};

struct VolumeInfo {
  std::string name;
  std::string path;  // on the host, relative to the master's work directory
  VolumeMeta meta;
  bool operator==(const VolumeInfo&) const = default;
};

struct MountInfo {
  std::string name;  // a volume of `volumes`
  std::string path;  // where the volume appears inside the service
  bool readonly = false;
  bool operator==(const MountInfo&) const = default;
};

struct RetryPolicy {
  std::optional<int> max;  // unset: retry for ever
  bool operator==(const RetryPolicy&) const = default;
};

struct BackoffPolicy {
  std::chrono::milliseconds min{1000};
  std::chrono::milliseconds max{5 * 60 * 1000};
  double factor = 2;
  bool operator==(const BackoffPolicy&) const = default;
};

struct RestartPolicy {
  RetryPolicy retry;
  std::string policy = "always";  // always, on-failure, no
  BackoffPolicy backoff;
  bool operator==(const RestartPolicy&) const = default;
};

struct CpuResources {
  double cpus = 0;      // 1.5 = one and a half cores; 0 = no limit
  std::string setcpus;  // "0-2", "0,1"
  bool operator==(const CpuResources&) const = default;
};

struct MemoryResources {
  config::ByteSize limit;  // 0 = no limit
  config::ByteSize swap;
  bool operator==(const MemoryResources&) const = default;
};

struct PidsResources {
  std::int64_t limit = 0;  // 0 = no limit
  bool operator==(const PidsResources&) const = default;
};

struct Resources {
  CpuResources cpu;
  MemoryResources memory;
  PidsResources pids;
  bool operator==(const Resources&) const = default;
};

struct ServiceInfo {
  std::string name;
  std::string image;
  int replica = 0;
  std::vector<MountInfo> mounts;
  std::vector<std::string> ports;    // docker only
  std::vector<std::string> devices;  // docker only
  std::vector<std::string> args;     // argv after argv[0]
  std::map<std::string, std::string> env;
  RestartPolicy restart;
  Resources resources;  // docker only
  bool operator==(const ServiceInfo&) const = default;
};

struct AppConfig {
  std::string version;
  std::vector<ServiceInfo> services;
  std::vector<VolumeInfo> volumes;
  bool operator==(const AppConfig&) const = default;

  const ServiceInfo* find_service(const std::string& name) const;
  const VolumeInfo* find_volume(const std::string& name) const;
};

// package.yml of a native package (lib/baetyl/<image>/package.yml in a mounted volume): the
// program to run, relative to the package directory. Other keys are ignored.
struct PackageManifest {
  std::string entry;
};

void describe(config::Reader& r, PackageManifest& c);
void describe(config::Reader& r, VolumeMeta& c);
void describe(config::Reader& r, VolumeInfo& c);
void describe(config::Reader& r, MountInfo& c);
void describe(config::Reader& r, RestartPolicy& c);
void describe(config::Reader& r, Resources& c);
void describe(config::Reader& r, ServiceInfo& c);
// Also checks what spans entries: unique service and volume names, mounts naming declared volumes,
// volume paths that stay inside the work directory. An unknown top-level key is an error (and the
// checks across entries are then skipped: they would only repeat its consequences); unknown keys
// below services and volumes are left to the caller (see load_app_config).
void describe(config::Reader& r, AppConfig& c);

// Default location, relative to the master's work directory.
inline constexpr const char* kAppConfigFile = "var/db/baetyl/application.yml";

// Reads and validates application.yml. Throws config::ConfigError naming the file and keys.
// Unknown keys below services and volumes are appended to `unknown_keys` (callers warn).
AppConfig load_app_config(const std::string& path, std::vector<std::string>* unknown_keys = nullptr);
// The same for a text already read; `source` names it in errors.
AppConfig parse_app_config(const std::string& text, const std::string& source,
                           std::vector<std::string>* unknown_keys = nullptr);
// What an application must also have to replace a running one in an update: at least one service.
// Throws config::ConfigError naming `source`.
void check_replacement(const AppConfig& app, const std::string& source);

// `path` joined to `workdir` with `.` and `..` resolved lexically; nullopt when the result would
// leave `workdir` (absolute paths are taken as relative to it, as the original did).
std::optional<std::string> resolve_inside(const std::string& workdir, const std::string& path);

// The volumes `service` mounts (in mount order); used to tell whether an update changed them.
std::vector<VolumeInfo> volumes_of(const AppConfig& app, const ServiceInfo& service);

// The last path element of an image without its tag or digest:
// hub.baidubce.com/baetyl/baetyl-hub:latest -> baetyl-hub.
std::string image_base_name(std::string image);

}  // namespace baetyl::master
