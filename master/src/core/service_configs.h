#pragma once
// The configuration file of each service whose module the master knows, checked before the
// service starts: those of baetyl-hub, baetyl-function-manager and baetyl-remote-mqtt through
// the modules' own configuration structs; those of the timer and the function runtimes
// only as YAML maps. Services of other images are not looked at.
#include <filesystem>
#include <string>
#include <vector>

#include "config/app_config.h"

namespace baetyl::master {

// The file a service's module reads: the value of `-c FILE`, `--config FILE` or `--config=FILE`
// in its args (the last one), else etc/baetyl/service.yml; relative to the service directory.
std::string service_config_argument(const ServiceInfo& service);

// Every problem of the known modules' configuration files, one per entry, as
// "<file>: <key>: <reason> (service <name>)". The file is found on the host through the service's
// mounts (volume paths relative to `workdir`); one in no mount, or missing, means the module's
// defaults, which are checked as such.
std::vector<std::string> check_service_configs(const AppConfig& app,
                                               const std::filesystem::path& workdir);

}  // namespace baetyl::master
