#include "config/master_config.h"

#include <filesystem>

#include "baetyl/env.h"

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
}

void describe(config::Reader& r, MasterConfig& c) {
  r.field("mode", c.mode).one_of({"docker", "native"});
  r.field("grace", c.grace).min(std::chrono::milliseconds(0));
  r.field("server", c.server);
  r.field("logger", c.logger);
  r.field("docker", c.docker);
}

MasterConfig load_master_config(const std::string& path, std::vector<std::string>* unknown_keys) {
  YAML::Node document;
  if (std::filesystem::exists(path)) document = config::load_yaml_file(path);
  MasterConfig defaults;
  defaults.server.address =
      env::get_or(env::kMasterApiAddress, env::default_master_api_address());
  defaults.logger.path = kDefaultLogFile;
  config::Reader reader(document, path);
  reader.read(defaults);
  reader.throw_if_errors();
  if (unknown_keys) *unknown_keys = reader.unknown_keys();
  return defaults;
}

}  // namespace baetyl::master
