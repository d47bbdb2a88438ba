#include "config/master_config.h"

#include <filesystem>
#include <set>
#include <string>

#include "baetyl/env.h"
#include "config/app_config.h"

namespace baetyl::master {

void describe(config::Reader& r, ServerConfig& c) {
  r.field("address", c.address)
      .not_empty()
      .matches("(unix://.+|tcp://[^/]+:[0-9]+)")
      .check([](const std::string& a) { return a != "unix://"; }, "needs a socket path");
  r.field("timeout", c.timeout).min(std::chrono::milliseconds(1));
}

void describe(config::Reader& r, DockerConfig& c) {
  r.field("api_version", c.api_version).matches("[0-9]+\\.[0-9]+");
  r.field("pull_timeout", c.pull_timeout).min(std::chrono::milliseconds(1));
  // One name: systemd reads '-' in a slice name as a level of the tree, and a path would not fit
  // both drivers.
  r.field("cgroup_parent", c.cgroup_parent)
      .check(
          [](const std::string& name) {
            return config::regex_full_match(name, "[A-Za-z0-9_]{0,64}");
          },
          "must be empty or one name of at most 64 letters, digits and '_'");
}

void describe(config::Reader& r, UpdateConfig& c) {
  r.field("timeout", c.timeout).min(std::chrono::milliseconds(100));
  const std::size_t issues = r.issues().size();
  r.field("services", c.services);
  if (r.issues().size() != issues) return;  // not a list of strings: nothing more to say
  std::set<std::string> seen;
  for (std::size_t i = 0; i < c.services.size(); ++i) {
    const std::string& name = c.services[i];
    const std::string key = "services[" + std::to_string(i) + "]";
    if (!config::regex_full_match(name, kNamePattern)) {
      r.error(key, "'" + name + "' is not a service name (" + kNamePattern + ")");
    } else if (!seen.insert(name).second) {
      r.error(key, "'" + name + "' is listed twice");
    }
  }
}

void describe(config::Reader& r, MetricsConfig& c) {
  r.field("address", c.address)
      .matches("(tcp://([^/:]+|\\[[0-9a-fA-F:.]+\\]):[0-9]{1,5})?")
      .check(
          [](const std::string& a) {
            const std::string port = a.substr(a.rfind(':') + 1);
            // A malformed address is matches()'s to report.
            if (port.empty() || port.size() > 5 ||
                port.find_first_not_of("0123456789") != std::string::npos) {
              return true;
            }
            return std::stoul(port) < 65536;
          },
          "port must be below 65536");
}

void describe(config::Reader& r, MasterConfig& c) {
  r.field("mode", c.mode).one_of({"docker", "native"});
  r.field("grace", c.grace).min(std::chrono::milliseconds(0));
  r.field("server", c.server);
  r.field("logger", c.logger);
  r.field("docker", c.docker);
  r.field("update", c.update);
  r.field("metrics", c.metrics);
}

MasterConfig master_config_defaults() {
  MasterConfig defaults;
  defaults.server.address =
      env::get_or(env::kMasterApiAddress, env::default_master_api_address());
  defaults.logger.path = kDefaultLogFile;
  return defaults;
}

MasterConfig load_master_config(const std::string& path, std::vector<std::string>* unknown_keys) {
  YAML::Node document;
  if (std::filesystem::exists(path)) document = config::load_yaml_file(path);
  MasterConfig defaults = master_config_defaults();
  config::Reader reader(document, path);
  reader.read(defaults);
  reader.throw_if_errors();
  if (unknown_keys) *unknown_keys = reader.unknown_keys();
  return defaults;
}

}  // namespace baetyl::master
