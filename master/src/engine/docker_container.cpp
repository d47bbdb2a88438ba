#include "engine/docker_container.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <set>
#include <stdexcept>

#include "engine/docker_client.h"
#include "engine/process_util.h"

namespace baetyl::master {
namespace {

namespace fs = std::filesystem;

// Docker refuses a smaller memory limit.
constexpr std::uint64_t kMinMemoryLimit = 6 << 20;

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::size_t begin = 0;
  for (;;) {
    const auto end = text.find(separator, begin);
    parts.push_back(text.substr(begin, end - begin));
    if (end == std::string::npos) return parts;
    begin = end + 1;
  }
}

struct PortRange {
  unsigned first = 0;
  unsigned last = 0;
  unsigned size() const { return last - first + 1; }
};

PortRange parse_range(const std::string& text, const char* what) {
  auto parse = [&](const std::string& part) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (part.empty() || ec != std::errc() || end != part.data() + part.size() || value == 0 ||
        value > 65535) {
      throw std::invalid_argument(std::string(what) + " '" + text +
                                  "' is not a port (1-65535) or a range of ports");
    }
    return value;
  };
  const auto dash = text.find('-');
  PortRange range;
  range.first = parse(text.substr(0, dash));
  range.last = dash == std::string::npos ? range.first : parse(text.substr(dash + 1));
  if (range.last < range.first) {
    throw std::invalid_argument(std::string(what) + " range '" + text + "' ends before it begins");
  }
  return range;
}

// `path` cleaned and absolute inside the container; throws when it is "/" or climbs out.
std::string container_path(const std::string& path, const std::string& what) {
  auto clean = resolve_inside("/", path);
  if (!clean || *clean == "/") {
    throw std::invalid_argument(what + " '" + path + "' must name a directory below /");
  }
  return *clean;
}

}  // namespace

std::vector<PortBinding> parse_port_spec(const std::string& spec) {
  std::string rest = spec;
  std::string protocol = "tcp";
  if (const auto slash = rest.rfind('/'); slash != std::string::npos) {
    protocol = rest.substr(slash + 1);
    rest.erase(slash);
    if (protocol != "tcp" && protocol != "udp" && protocol != "sctp") {
      throw std::invalid_argument("protocol '" + protocol + "' is not tcp, udp or sctp");
    }
  }
  std::string ip;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      throw std::invalid_argument("an IPv6 address is written [address]:hostPort:containerPort");
    }
    ip = rest.substr(1, close - 1);
    rest.erase(0, close + 2);
    if (split(rest, ':').size() != 2) {
      throw std::invalid_argument("expected [address]:hostPort:containerPort");
    }
    rest = ":" + rest;  // parsed below as ip:host:container with the ip already taken
  }
  auto parts = split(rest, ':');
  std::string host, container;
  if (parts.size() == 1) {
    container = parts[0];
  } else if (parts.size() == 2) {
    host = parts[0];
    container = parts[1];
  } else if (parts.size() == 3) {
    if (ip.empty()) ip = parts[0];
    host = parts[1];
    container = parts[2];
  } else {
    throw std::invalid_argument("expected [ip:][hostPort:]containerPort[/protocol]");
  }
  const PortRange containers = parse_range(container, "container port");
  std::optional<PortRange> hosts;
  if (!host.empty()) {
    hosts = parse_range(host, "host port");
    if (hosts->size() != containers.size()) {
      throw std::invalid_argument("host ports '" + host + "' and container ports '" + container +
                                  "' are not ranges of the same length");
    }
  }
  std::vector<PortBinding> bindings;
  for (unsigned i = 0; i < containers.size(); ++i) {
    PortBinding binding;
    binding.container_port = std::to_string(containers.first + i) + "/" + protocol;
    binding.host_ip = ip;
    if (hosts) binding.host_port = std::to_string(hosts->first + i);
    bindings.push_back(std::move(binding));
  }
  return bindings;
}

DeviceMapping parse_device_spec(const std::string& spec) {
  auto parts = split(spec, ':');
  if (parts.size() > 3 || parts[0].empty() || parts[0].front() != '/') {
    throw std::invalid_argument("expected /dev/host[:/dev/container[:permissions]]");
  }
  DeviceMapping device{parts[0], parts[0], "rwm"};
  if (parts.size() >= 2) {
    if (parts[1].empty() || parts[1].front() != '/') {
      throw std::invalid_argument("the container path '" + parts[1] + "' must be absolute");
    }
    device.container = parts[1];
  }
  if (parts.size() == 3) {
    const std::string& permissions = parts[2];
    std::set<char> seen;
    for (char c : permissions) {
      if ((c != 'r' && c != 'w' && c != 'm') || !seen.insert(c).second) {
        throw std::invalid_argument("permissions '" + permissions + "' must be letters of rwm");
      }
    }
    if (permissions.empty()) throw std::invalid_argument("empty permissions");
    device.permissions = permissions;
  }
  return device;
}

std::vector<std::string> service_binds(const ServiceInfo& service,
                                       const std::vector<VolumeInfo>& volumes,
                                       const fs::path& workdir) {
  std::vector<std::string> binds;
  for (std::size_t i = 0; i < service.mounts.size(); ++i) {
    const auto& mount = service.mounts[i];
    const std::string key = "mounts[" + std::to_string(i) + "]";
    const VolumeInfo* volume = nullptr;
    for (const auto& candidate : volumes) {
      if (candidate.name == mount.name) volume = &candidate;
    }
    if (!volume) throw std::invalid_argument(key + ": volume '" + mount.name + "' is not declared");
    auto host = resolve_inside(workdir.string(), volume->path);
    if (!host) {
      throw std::invalid_argument(key + ": volume '" + volume->name + "' path '" + volume->path +
                                  "' leaves the work directory");
    }
    const std::string target = container_path(mount.path, key + ".path");
    if (host->find(':') != std::string::npos || target.find(':') != std::string::npos) {
      throw std::invalid_argument(key + ": a path with ':' cannot be bound by Docker (" + *host +
                                  " -> " + target + ")");
    }
    if (target == kContainerApiSocket) {
      throw std::invalid_argument(key + ".path: " + target + " is where the master socket goes");
    }
    binds.push_back(*host + ":" + target + (mount.readonly ? ":ro" : ":rw"));
  }
  return binds;
}

bool is_image_reference(const std::string& image) {
  if (image.empty() || !std::isalnum(static_cast<unsigned char>(image.front()))) return false;
  return std::all_of(image.begin(), image.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '_' || c == '-' || c == '/' || c == ':' || c == '@';
  });
}

std::vector<std::string> check_docker_keys(const ServiceInfo& service) {
  std::vector<std::string> problems;
  if (!is_image_reference(service.image)) {
    problems.push_back("image: '" + service.image +
                       "' is not an image reference (letters, digits and . _ - / : @, starting "
                       "with a letter or digit)");
  }
  for (std::size_t i = 0; i < service.ports.size(); ++i) {
    try {
      parse_port_spec(service.ports[i]);
    } catch (const std::invalid_argument& e) {
      problems.push_back("ports[" + std::to_string(i) + "]: '" + service.ports[i] +
                         "': " + e.what());
    }
  }
  for (std::size_t i = 0; i < service.devices.size(); ++i) {
    try {
      parse_device_spec(service.devices[i]);
    } catch (const std::invalid_argument& e) {
      problems.push_back("devices[" + std::to_string(i) + "]: '" + service.devices[i] +
                         "': " + e.what());
    }
  }
  const auto& memory = service.resources.memory;
  if (memory.limit.bytes > 0 && memory.limit.bytes < kMinMemoryLimit) {
    problems.push_back("resources.memory.limit: Docker's smallest memory limit is 6m");
  }
  if (memory.swap.bytes > 0 && memory.limit.bytes == 0) {
    problems.push_back(
        "resources.memory.swap: needs resources.memory.limit (Docker's MemorySwap "
        "is the limit of memory and swap together)");
  } else if (memory.swap.bytes > 0 && memory.swap.bytes < memory.limit.bytes) {
    problems.push_back(
        "resources.memory.swap: must not be less than resources.memory.limit "
        "(Docker's MemorySwap is the limit of memory and swap together)");
  }
  return problems;
}

std::string docker_cgroup_parent(const std::string& name, const std::string& driver) {
  if (name.empty()) return "";
  return driver == "systemd" ? name + ".slice" : "/" + name;
}

nlohmann::json container_create_body(const InstanceSpec& spec, const ContainerContext& context) {
  const ServiceInfo& info = spec.info;
  nlohmann::json body;
  body["Image"] = info.image;
  if (!info.args.empty()) body["Cmd"] = info.args;
  body["Env"] = merge_environment(nullptr, spec.env);
  body["Labels"] = {{kDockerLabelBaetyl, "baetyl"},
                    {kDockerLabelService, spec.service},
                    {kDockerLabelInstance, spec.instance},
                    {kDockerLabelWorkdir, context.workdir.string()}};

  nlohmann::json host;
  auto binds = context.binds;
  if (!context.api_socket.empty()) {
    binds.push_back(context.api_socket.string() + ":" + kContainerApiSocket + ":ro");
  } else {
    host["ExtraHosts"] = {"host.docker.internal:host-gateway"};
  }
  host["Binds"] = binds;
  host["NetworkMode"] = kDockerNetwork;
  host["RestartPolicy"] = {{"Name", "no"}};
  // Docker's init as PID 1, the program its child: the kernel drops a signal to PID 1 that has
  // no handler, so a program stopped before it set up SIGTERM handling (a runtime still loading)
  // would only end with the kill after the grace. Its child ends on SIGTERM as in native mode.
  host["Init"] = true;
  if (!context.cgroup_parent.empty()) host["CgroupParent"] = context.cgroup_parent;

  nlohmann::json exposed = nlohmann::json::object();
  nlohmann::json bindings = nlohmann::json::object();
  for (const auto& port : info.ports) {
    for (const auto& binding : parse_port_spec(port)) {
      exposed[binding.container_port] = nlohmann::json::object();
      if (!bindings.contains(binding.container_port)) {
        bindings[binding.container_port] = nlohmann::json::array();
      }
      bindings[binding.container_port].push_back(
          {{"HostIp", binding.host_ip}, {"HostPort", binding.host_port}});
    }
  }
  body["ExposedPorts"] = exposed;
  host["PortBindings"] = bindings;

  auto devices = nlohmann::json::array();
  for (const auto& text : info.devices) {
    const auto device = parse_device_spec(text);
    devices.push_back({{"PathOnHost", device.host},
                       {"PathInContainer", device.container},
                       {"CgroupPermissions", device.permissions}});
  }
  host["Devices"] = devices;

  const auto& resources = info.resources;
  if (resources.cpu.cpus > 0) {
    host["NanoCpus"] = static_cast<std::int64_t>(std::llround(resources.cpu.cpus * 1e9));
  }
  if (!resources.cpu.setcpus.empty()) host["CpusetCpus"] = resources.cpu.setcpus;
  if (resources.memory.limit.bytes > 0) host["Memory"] = resources.memory.limit.bytes;
  if (resources.memory.swap.bytes > 0) host["MemorySwap"] = resources.memory.swap.bytes;
  if (resources.pids.limit > 0) host["PidsLimit"] = resources.pids.limit;
  body["HostConfig"] = std::move(host);
  body["NetworkingConfig"] = {
      {"EndpointsConfig", {{kDockerNetwork, {{"Aliases", {spec.service}}}}}}};
  return body;
}

std::string image_pull_query(const std::string& image) {
  if (image.find('@') != std::string::npos) return "fromImage=" + url_encode(image);
  const auto slash = image.rfind('/');
  const auto colon = image.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    return "fromImage=" + url_encode(image.substr(0, colon)) +
           "&tag=" + url_encode(image.substr(colon + 1));
  }
  return "fromImage=" + url_encode(image) + "&tag=latest";
}

std::string demultiplex_logs(std::string_view frames) {
  std::string text;
  while (frames.size() >= 8) {
    const auto byte = [&](std::size_t i) {
      return static_cast<std::uint32_t>(static_cast<unsigned char>(frames[i]));
    };
    const std::size_t size = (byte(4) << 24) | (byte(5) << 16) | (byte(6) << 8) | byte(7);
    frames.remove_prefix(8);
    text.append(frames.substr(0, size));
    frames.remove_prefix(std::min(size, frames.size()));
  }
  return text;
}

nlohmann::json container_stats_figures(const nlohmann::json& stats) {
  auto number = [](const nlohmann::json& object, std::initializer_list<const char*> path) {
    const nlohmann::json* at = &object;
    for (const char* key : path) {
      if (!at->is_object() || !at->contains(key)) return 0.0;
      at = &(*at)[key];
    }
    return at->is_number() ? at->get<double>() : 0.0;
  };
  if (!stats.is_object()) return nullptr;
  const double usage = number(stats, {"memory_stats", "usage"});
  const double total = number(stats, {"memory_stats", "limit"});
  const double cpu_total = number(stats, {"cpu_stats", "cpu_usage", "total_usage"});
  if (usage == 0 && total == 0 && cpu_total == 0) return nullptr;

  // As the docker CLI: cgroup v1 reports total_inactive_file, v2 inactive_file.
  double inactive = number(stats, {"memory_stats", "stats", "total_inactive_file"});
  if (inactive == 0) inactive = number(stats, {"memory_stats", "stats", "inactive_file"});
  const double used = usage > inactive ? usage - inactive : usage;

  const double cpu_delta = cpu_total - number(stats, {"precpu_stats", "cpu_usage", "total_usage"});
  const double system_delta = number(stats, {"cpu_stats", "system_cpu_usage"}) -
                              number(stats, {"precpu_stats", "system_cpu_usage"});
  double cpus = number(stats, {"cpu_stats", "online_cpus"});
  if (cpus == 0) {
    const auto& cpu = stats.value("cpu_stats", nlohmann::json::object());
    const auto& per_cpu = cpu.value("cpu_usage", nlohmann::json::object())
                              .value("percpu_usage", nlohmann::json::array());
    cpus = static_cast<double>(per_cpu.size());
  }
  const double cpu_percent =
      cpu_delta > 0 && system_delta > 0 ? cpu_delta / system_delta * cpus * 100.0 : 0.0;
  return {{"cpu_stats", {{"used_percent", cpu_percent}}},
          {"mem_stats",
           {{"total", static_cast<std::uint64_t>(total)},
            {"used", static_cast<std::uint64_t>(used)},
            {"used_percent", total > 0 ? used * 100.0 / total : 0.0}}}};
}

}  // namespace baetyl::master
