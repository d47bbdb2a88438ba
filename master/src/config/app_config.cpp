#include "config/app_config.h"

#include <filesystem>
#include <set>

namespace baetyl::master {

namespace {

// [ip:]host_port:container_port[/tcp|udp|sctp], or a single container port; ranges allowed.
constexpr const char* kPortPattern =
    "((\\[[0-9a-fA-F:.]+\\]|[0-9.]+):)?([0-9]+(-[0-9]+)?:)?[0-9]+(-[0-9]+)?(/(tcp|udp|sctp))?";
// host[:container[:permissions]]
constexpr const char* kDevicePattern = "/[^:]+(:/[^:]+)?(:[rwm]{1,3})?";
constexpr const char* kCpuSetPattern = "[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*";

bool stays_inside(const std::string& path) { return resolve_inside("/", path).has_value(); }

}  // namespace

const ServiceInfo* AppConfig::find_service(const std::string& name) const {
  for (const auto& service : services) {
    if (service.name == name) return &service;
  }
  return nullptr;
}

const VolumeInfo* AppConfig::find_volume(const std::string& name) const {
  for (const auto& volume : volumes) {
    if (volume.name == name) return &volume;
  }
  return nullptr;
}

void describe(config::Reader& r, PackageManifest& c) { r.field("entry", c.entry); }

void describe(config::Reader& r, VolumeMeta& c) {
  r.field("url", c.url);
  r.field("md5", c.md5);
  r.field("version", c.version);
}

void describe(config::Reader& r, VolumeInfo& c) {
  r.field("name", c.name).required().matches(kNamePattern);
  r.field("path", c.path)
      .required()
      .not_empty()
      .check(stays_inside, "must stay inside the work directory (no '..' above it)");
  r.field("meta", c.meta);
}

void describe(config::Reader& r, MountInfo& c) {
  r.field("name", c.name).required().matches(kNamePattern);
  r.field("path", c.path)
      .required()
      .not_empty()
      .check(stays_inside, "must stay inside the service's directory (no '..' above it)");
  r.field("readonly", c.readonly);
}

void describe(config::Reader& r, RestartPolicy& c) {
  r.section("retry", [&](config::Reader& s) { s.field("max", c.retry.max).min(0); });
  r.field("policy", c.policy).one_of({"always", "on-failure", "no"});
  r.section("backoff", [&](config::Reader& s) {
    s.field("min", c.backoff.min).min(std::chrono::milliseconds(0));
    s.field("max", c.backoff.max).min(std::chrono::milliseconds(0));
    s.field("factor", c.backoff.factor).min(1.0);
    s.check(c.backoff.max >= c.backoff.min, "max", "must not be less than backoff.min");
  });
}

void describe(config::Reader& r, Resources& c) {
  r.section("cpu", [&](config::Reader& s) {
    s.field("cpus", c.cpu.cpus).min(0.0);
    s.field("setcpus", c.cpu.setcpus).matches(kCpuSetPattern);
  });
  r.section("memory", [&](config::Reader& s) {
    s.field("limit", c.memory.limit);
    s.field("swap", c.memory.swap);
  });
  r.section("pids", [&](config::Reader& s) { s.field("limit", c.pids.limit).min(0); });
}

void describe(config::Reader& r, ServiceInfo& c) {
  r.field("name", c.name).required().matches(kNamePattern);
  r.field("image", c.image).required().not_empty();
  r.field("replica", c.replica).min(0);
  r.field("mounts", c.mounts);
  r.field("ports", c.ports).check(
      [](const std::vector<std::string>& ports) {
        for (const auto& port : ports) {
          if (!config::regex_full_match(port, kPortPattern)) return false;
        }
        return true;
      },
      "each entry must look like [ip:]hostPort:containerPort[/tcp|udp], e.g. 0.0.0.0:1883:1883");
  r.field("devices", c.devices)
      .check(
          [](const std::vector<std::string>& devices) {
            for (const auto& device : devices) {
              if (!config::regex_full_match(device, kDevicePattern)) return false;
            }
            return true;
          },
          "each entry must look like /dev/host[:/dev/container[:rwm]]");
  r.field("args", c.args);
  r.field("env", c.env).check(
      [](const std::map<std::string, std::string>& env) {
        for (const auto& [key, value] : env) {
          if (key.empty() || key.find('=') != std::string::npos) return false;
        }
        return true;
      },
      "variable names must be non-empty and must not contain '='");
  r.field("restart", c.restart);
  r.field("resources", c.resources);

  std::set<std::string> mount_paths;
  for (std::size_t i = 0; i < c.mounts.size(); ++i) {
    auto normal = resolve_inside("/", c.mounts[i].path);
    if (normal && !mount_paths.insert(*normal).second) {
      r.check(false, "mounts[" + std::to_string(i) + "].path",
              "'" + c.mounts[i].path + "' is mounted twice");
    }
  }
}

void describe(config::Reader& r, AppConfig& c) {
  r.field("version", c.version);
  r.field("services", c.services);
  r.field("volumes", c.volumes);

  // A misspelt top-level key (`service:`, `volume:`) would otherwise leave an empty application or
  // a cascade of undeclared volumes; say only what is wrong.
  bool misspelt = false;
  for (const auto& key : r.unknown_keys()) {
    if (key.rfind("services[", 0) == 0 || key.rfind("volumes[", 0) == 0) continue;
    r.error(key, "unknown key; an application has only version, services and volumes");
    misspelt = true;
  }
  if (misspelt) return;

  std::set<std::string> volume_names;
  for (std::size_t i = 0; i < c.volumes.size(); ++i) {
    const auto& name = c.volumes[i].name;
    if (!name.empty() && !volume_names.insert(name).second) {
      r.check(false, "volumes[" + std::to_string(i) + "].name",
              "'" + name + "' is already the name of another volume");
    }
  }
  std::set<std::string> service_names;
  for (std::size_t i = 0; i < c.services.size(); ++i) {
    const auto& service = c.services[i];
    const std::string key = "services[" + std::to_string(i) + "]";
    if (!service.name.empty() && !service_names.insert(service.name).second) {
      r.check(false, key + ".name", "'" + service.name + "' is already the name of another service");
    }
    for (std::size_t j = 0; j < service.mounts.size(); ++j) {
      const auto& mount = service.mounts[j];
      if (!mount.name.empty() && !volume_names.count(mount.name)) {
        r.check(false, key + ".mounts[" + std::to_string(j) + "].name",
                "volume '" + mount.name + "' is not declared in volumes");
      }
    }
  }
}

AppConfig load_app_config(const std::string& path, std::vector<std::string>* unknown_keys) {
  return config::load_file<AppConfig>(path, unknown_keys);
}

AppConfig parse_app_config(const std::string& text, const std::string& source,
                           std::vector<std::string>* unknown_keys) {
  return config::load_string<AppConfig>(text, source, unknown_keys);
}

void check_replacement(const AppConfig& app, const std::string& source) {
  if (app.services.empty()) {
    throw config::ConfigError(source,
                              {config::Issue{"services", "an update needs at least one service"}});
  }
}

std::optional<std::string> resolve_inside(const std::string& workdir, const std::string& path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part == "..") {
      if (parts.empty()) return std::nullopt;
      parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(std::move(part));
    }
    start = end + 1;
  }
  std::string result = workdir;
  for (const auto& part : parts) {
    if (result.empty() || result.back() != '/') result += '/';
    result += part;
  }
  if (result.empty()) result = ".";
  return result;
}

std::vector<VolumeInfo> volumes_of(const AppConfig& app, const ServiceInfo& service) {
  std::vector<VolumeInfo> result;
  for (const auto& mount : service.mounts) {
    if (const auto* volume = app.find_volume(mount.name)) result.push_back(*volume);
  }
  return result;
}

std::string image_base_name(std::string image) {
  if (auto at = image.find('@'); at != std::string::npos) image.erase(at);
  if (auto slash = image.rfind('/'); slash != std::string::npos) image.erase(0, slash + 1);
  if (auto colon = image.find(':'); colon != std::string::npos) image.erase(colon);
  return image;
}

}  // namespace baetyl::master
