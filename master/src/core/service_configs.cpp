#include "core/service_configs.h"

#include <functional>
#include <map>
#include <optional>

#include "baetyl/config/reader.h"
#include "engine/native_engine.h"
#include "function-manager/src/config.h"
#include "hub/src/config.h"
#include "remote-mqtt/src/config.h"

namespace baetyl::master {

namespace fs = std::filesystem;

namespace {

// A module whose configuration only has to be a YAML map (duplicate keys are errors too).
struct AnyMap {};
void describe(config::Reader&, AnyMap&) {}

using Checker = std::function<void(const YAML::Node& document, const std::string& source)>;

template <config::Describable T>
Checker checker_of() {
  return [](const YAML::Node& document, const std::string& source) {
    config::read_document<T>(document, source);
  };
}

// By installed program name (what an image names, see installed_program_name()).
const std::map<std::string, Checker>& known_modules() {
  static const std::map<std::string, Checker> modules = {
      {"baetyl-hub", checker_of<hub::HubConfig>()},
      {"baetyl-function-manager", checker_of<function::ManagerConfig>()},
      {"baetyl-remote-mqtt", checker_of<remote::BridgeConfig>()},
      {"baetyl-timer", checker_of<AnyMap>()},
      {"baetyl-function-python", checker_of<AnyMap>()},
      {"baetyl-function-node", checker_of<AnyMap>()},
      {"baetyl-function-sql", checker_of<AnyMap>()},
  };
  return modules;
}

// `path` relative to `workdir` when it lies inside it, for shorter messages.
std::string shown(const fs::path& path, const fs::path& workdir) {
  const auto relative = path.lexically_relative(workdir);
  if (relative.empty() || *relative.begin() == "..") return path.string();
  return relative.string();
}

// Each line of a ConfigError, with whose configuration it is.
void add_problems(const std::string& what, const std::string& service,
                  std::vector<std::string>& problems) {
  std::size_t begin = 0;
  while (begin <= what.size()) {
    auto end = what.find('\n', begin);
    if (end == std::string::npos) end = what.size();
    if (end > begin) {
      problems.push_back(what.substr(begin, end - begin) + " (service " + service + ")");
    }
    begin = end + 1;
  }
}

}  // namespace

std::string service_config_argument(const ServiceInfo& service) {
  std::string file = "etc/baetyl/service.yml";
  const auto& args = service.args;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "-c" || args[i] == "--config") && i + 1 < args.size()) {
      file = args[++i];
    } else if (args[i].starts_with("--config=")) {
      file = args[i].substr(9);
    }
  }
  return file;
}

std::vector<std::string> check_service_configs(const AppConfig& app, const fs::path& workdir) {
  std::vector<std::string> problems;
  for (const auto& service : app.services) {
    const auto module = known_modules().find(installed_program_name(service.image));
    if (module == known_modules().end()) continue;
    const std::string argument = service_config_argument(service);
    std::optional<fs::path> host;
    if (fs::path(argument).is_absolute()) {
      host = fs::path(argument);
    } else {
      host = host_path_in_mounts(app, service, workdir, argument);
    }
    std::error_code ec;
    try {
      if (host && fs::exists(*host, ec)) {
        const std::string source = shown(*host, workdir);
        module->second(config::load_yaml_file(host->string()), source);
      } else {
        // The module starts with its defaults.
        const std::string source =
            argument +
            (host ? " (" + shown(*host, workdir) + " does not exist)" : " (in no mounted volume)");
        module->second(YAML::Node(YAML::NodeType::Map), source);
      }
    } catch (const std::exception& e) {
      add_problems(e.what(), service.name, problems);
    }
  }
  return problems;
}

}  // namespace baetyl::master
