#pragma once
// What `baetyl start` checks before it touches anything, which is all that `baetyl check` does:
// the master configuration (a file given with -c exists; in docker mode the daemon answers), the
// application (application.yml is valid, the engine can run every service: in native mode each
// image resolves to a program) and the configuration files of the services whose module is
// known (see service_configs.h). Paths are relative to the work directory, the current one.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "config/app_config.h"
#include "config/master_config.h"
#include "engine/engine.h"

namespace baetyl::master {

struct MasterConfigFile {
  std::string path;    // as given with -c, else etc/baetyl/conf.yml
  bool found = false;  // false: every key has its default
  MasterConfig config;
  std::vector<std::string> unknown_keys;
};

// Reads conf.yml: the file given with -c must exist; without -c a missing default file means
// defaults. Throws config::ConfigError naming the file and keys.
MasterConfigFile read_master_config_file(const std::optional<std::string>& given);

// The engine of the file's mode (make_engine). In docker mode the daemon must answer: when it
// does not, or its API version does not fit, throws config::ConfigError naming the file, `mode`
// and the reason.
std::unique_ptr<Engine> open_engine(const MasterConfigFile& file,
                                    const std::filesystem::path& workdir,
                                    const std::filesystem::path& binary,
                                    std::shared_ptr<spdlog::logger> logger);

struct AppConfigFile {
  std::string path = kAppConfigFile;
  bool found = false;  // false: no service to start
  AppConfig app;
  std::vector<std::string> unknown_keys;
};

// Reads application.yml when it exists. Throws config::ConfigError naming the file and keys.
AppConfigFile read_app_config_file();

// Checks that every service of `file` can start: `engine` (null: not checked) prepares them, and
// the configuration files of known modules are valid. Throws std::runtime_error with every
// problem on a line of its own, each naming its file and key
// ("var/db/baetyl/application.yml: services[2].image: ...").
void check_services(const AppConfigFile& file, Engine* engine,
                    const std::filesystem::path& workdir);

}  // namespace baetyl::master
