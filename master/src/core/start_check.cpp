#include "core/start_check.h"

#include <stdexcept>

#include "baetyl/config/reader.h"
#include "core/master.h"
#include "core/service_configs.h"

namespace baetyl::master {

namespace fs = std::filesystem;

MasterConfigFile read_master_config_file(const std::optional<std::string>& given) {
  MasterConfigFile file;
  file.path = given.value_or(kMasterConfigFile);
  std::error_code ec;
  file.found = fs::exists(file.path, ec);
  if (given && !file.found) {
    throw config::ConfigError(file.path, {{"", "no such file (given with -c)"}});
  }
  file.config = load_master_config(file.path, &file.unknown_keys);
  return file;
}

std::unique_ptr<Engine> open_engine(const MasterConfigFile& file, const fs::path& workdir,
                                    const fs::path& binary,
                                    std::shared_ptr<spdlog::logger> logger) {
  try {
    return make_engine(file.config, workdir, binary, std::move(logger));
  } catch (const std::exception& e) {
    if (file.config.mode != "docker") throw;
    std::string what = "'docker'";
    if (!file.found) {
      what += " (the default: the file does not exist)";
    } else if (!config::load_yaml_file(file.path)["mode"]) {
      what += " (the default)";
    }
    throw config::ConfigError(
        file.path, {{"mode", what + ": the Docker daemon cannot be used: " + e.what() +
                                 "; start Docker (scripts/docker-daemon.sh, systemctl start "
                                 "docker) or set `mode: native`"}});
  }
}

AppConfigFile read_app_config_file() {
  AppConfigFile file;
  std::error_code ec;
  file.found = fs::exists(file.path, ec);
  if (file.found) file.app = load_app_config(file.path, &file.unknown_keys);
  return file;
}

void check_services(const AppConfigFile& file, Engine* engine, const fs::path& workdir) {
  std::string problems;
  auto add = [&](const std::string& line) {
    if (!problems.empty()) problems += '\n';
    problems += line;
  };
  if (engine) {
    try {
      engine->prepare(file.app);
    } catch (const std::exception& e) {
      // One problem per line, each "services[<i>].image: ...".
      const std::string what = e.what();
      std::size_t begin = 0;
      while (begin < what.size()) {
        auto end = what.find('\n', begin);
        if (end == std::string::npos) end = what.size();
        if (end > begin) add(file.path + ": " + what.substr(begin, end - begin));
        begin = end + 1;
      }
    }
  }
  for (const auto& problem : check_service_configs(file.app, workdir)) add(problem);
  if (!problems.empty()) throw std::runtime_error(problems);
}

}  // namespace baetyl::master
