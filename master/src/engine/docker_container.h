#pragma once
// What the docker engine asks of the daemon, as pure functions: the body that creates an
// instance's container, the pieces of a service definition it is made of (ports, devices, binds,
// resources), the image reference of a pull, and the figures inspect takes from container stats.
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/app_config.h"
#include "engine/engine.h"

namespace baetyl::master {

// Labels on everything the docker engine creates. A container is this master's when it carries
// kDockerLabelBaetyl=baetyl and kDockerLabelWorkdir=<its work directory>: masters with different
// work directories share one daemon without touching each other's containers.
inline constexpr const char* kDockerLabelBaetyl = "baetyl";
inline constexpr const char* kDockerLabelService = "service";
inline constexpr const char* kDockerLabelInstance = "instance";
inline constexpr const char* kDockerLabelWorkdir = "baetyl.workdir";
inline constexpr const char* kDockerNetwork = "baetyl";
// Where a container finds the master API socket, and the address it is given for it.
inline constexpr const char* kContainerApiSocket = "/var/run/baetyl.sock";

struct PortBinding {
  std::string container_port;  // "1883/tcp"
  std::string host_ip;         // "" = every address
  std::string host_port;       // "" = only exposed, or a port the daemon picks
  bool operator==(const PortBinding&) const = default;
};

// One `ports` entry, [ip:][hostPort:]containerPort[/tcp|udp|sctp] with optional ranges
// ("8000-8001:9000-9001"), as Docker reads it. Throws std::invalid_argument with the reason.
std::vector<PortBinding> parse_port_spec(const std::string& spec);

struct DeviceMapping {
  std::string host;
  std::string container;    // the host path when not given
  std::string permissions;  // "rwm" when not given
  bool operator==(const DeviceMapping&) const = default;
};

// One `devices` entry, host[:container[:permissions]]. Throws std::invalid_argument.
DeviceMapping parse_device_spec(const std::string& spec);

// The binds of `service`: "<workdir>/<volume path>:/<mount path>:ro|rw", both paths cleaned so
// that neither can leave its root. Throws std::invalid_argument naming the mount.
std::vector<std::string> service_binds(const ServiceInfo& service,
                                       const std::vector<VolumeInfo>& volumes,
                                       const std::filesystem::path& workdir);

// Whether `image` can be an image reference: letters, digits and . _ - / : @, starting with a
// letter or digit (so that it goes into a request path as it is).
bool is_image_reference(const std::string& image);

// Checks what Docker would refuse in a service's image and docker-only keys (ports, devices,
// resources), one "<key>: <reason>" per problem (e.g. "ports[1]: ..."); empty when all is well.
// Mounts are checked by service_binds.
std::vector<std::string> check_docker_keys(const ServiceInfo& service);

struct ContainerContext {
  std::filesystem::path workdir;   // absolute, symlinks resolved: the baetyl.workdir label
  std::vector<std::string> binds;  // of the service (service_binds)
  // The master API socket on the host, bound read-only at kContainerApiSocket; empty when the
  // API listens on TCP, which containers reach as host.docker.internal (an extra host entry).
  std::filesystem::path api_socket;
  // HostConfig.CgroupParent (docker_cgroup_parent); empty: Docker's default.
  std::string cgroup_parent;
};

// The CgroupParent of the containers for the conf.yml name `name` under Docker's cgroup driver
// `driver` (GET /info's CgroupDriver): "/<name>" with cgroupfs, "<name>.slice" with systemd;
// empty when `name` is (Docker's default parent).
std::string docker_cgroup_parent(const std::string& name, const std::string& driver);

// The body of POST /containers/create?name=<instance> for `spec`: its image, args as Cmd, env,
// labels, the baetyl network with the service name as an alias, binds, ports, devices,
// resources, the cgroup parent, Docker's restart policy "no". Throws std::invalid_argument for a
// bad port or device.
nlohmann::json container_create_body(const InstanceSpec& spec, const ContainerContext& context);

// The query of POST /images/create pulling `image`: fromImage and tag (latest when none is
// given; none for a digest reference).
std::string image_pull_query(const std::string& image);

// The text of GET /containers/{id}/logs of a container without a TTY: Docker's frames (a byte
// naming the stream, three zero bytes, the payload's size as 4 bytes big-endian, the payload)
// joined, stdout and stderr alike. A truncated last frame is cut off.
std::string demultiplex_logs(std::string_view frames);

// From GET /containers/{id}/stats?stream=false: {"cpu_stats":{"used_percent"},
// "mem_stats":{"total","used","used_percent"}}, cpu as the share of one core (as in native mode)
// between the two samples Docker took, memory used without the inactive page cache and total the
// container's limit (the host's memory when it has none). Null when the stats carry no figures
// (the container is not running).
nlohmann::json container_stats_figures(const nlohmann::json& stats);

}  // namespace baetyl::master
