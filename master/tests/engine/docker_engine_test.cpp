// The docker engine's logic that needs no Docker daemon: API version negotiation, the requests it
// builds (container create body, pull query, binds, ports, devices), stats parsing, and the
// client's exchanges with a stand-in daemon on a Unix socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/testing/temp_dir.h"
#include "engine/docker_client.h"
#include "engine/docker_container.h"
#include "engine/docker_engine.h"

namespace baetyl::master {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;
using namespace std::chrono_literals;

TEST(DockerApiVersion, ComparesMajorThenMinor) {
  EXPECT_LT(compare_api_versions("1.9", "1.10"), 0);
  EXPECT_GT(compare_api_versions("2.0", "1.41"), 0);
  EXPECT_EQ(compare_api_versions("1.41", "1.41"), 0);
  EXPECT_THROW(compare_api_versions("1", "1.41"), std::invalid_argument);
  EXPECT_THROW(compare_api_versions("1.x", "1.41"), std::invalid_argument);
}

TEST(DockerApiVersion, TakesTheOlderOfTheClientsAndTheDaemons) {
  EXPECT_EQ(negotiate_api_version({{"ApiVersion", "1.41"}, {"MinAPIVersion", "1.12"}}, {}), "1.41");
  EXPECT_EQ(negotiate_api_version({{"ApiVersion", "1.45"}, {"MinAPIVersion", "1.24"}}, {}), "1.41");
  EXPECT_EQ(negotiate_api_version({{"ApiVersion", "1.38"}, {"MinAPIVersion", "1.12"}}, {}), "1.38");
}

TEST(DockerApiVersion, RefusesADaemonOlderThanTheClientNeeds) {
  try {
    negotiate_api_version({{"ApiVersion", "1.25"}, {"MinAPIVersion", "1.12"}}, {});
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("the daemon supports API versions 1.12 to 1.25; the master "
                                    "needs 1.30 or newer"));
  }
  EXPECT_THROW(negotiate_api_version({{"Version", "20.10"}}, {}), std::runtime_error);
  EXPECT_THROW(negotiate_api_version("not an object", {}), std::runtime_error);
}

TEST(DockerApiVersion, AnOverrideWinsWhenTheDaemonSupportsIt) {
  const json server = {{"ApiVersion", "1.41"}, {"MinAPIVersion", "1.12"}};
  EXPECT_EQ(negotiate_api_version(server, std::string("1.38")), "1.38");
  // The override is also how a daemon older than the client's minimum is used anyway.
  EXPECT_EQ(negotiate_api_version({{"ApiVersion", "1.25"}, {"MinAPIVersion", "1.12"}},
                                  std::string("1.25")),
            "1.25");
  try {
    negotiate_api_version(server, std::string("1.43"));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(),
                 "API version 1.43 was asked for, but the daemon supports API versions 1.12 to "
                 "1.41");
  }
  EXPECT_THROW(negotiate_api_version(server, std::string("1.5")), std::runtime_error);
}

TEST(DockerRequests, UrlEncodesQueryValues) {
  EXPECT_EQ(url_encode("a-b_c.d~e"), "a-b_c.d~e");
  EXPECT_EQ(url_encode("{\"label\":[\"baetyl=baetyl\"]}"),
            "%7B%22label%22%3A%5B%22baetyl%3Dbaetyl%22%5D%7D");
  EXPECT_EQ(url_encode("hub.baidubce.com/baetyl/x"), "hub.baidubce.com%2Fbaetyl%2Fx");
}

TEST(DockerRequests, PullQueryNamesTheTagLatestWhenNoneIsGiven) {
  EXPECT_EQ(image_pull_query("busybox"), "fromImage=busybox&tag=latest");
  EXPECT_EQ(image_pull_query("hub.baidubce.com/baetyl/baetyl-hub:1.0"),
            "fromImage=hub.baidubce.com%2Fbaetyl%2Fbaetyl-hub&tag=1.0");
  // A registry port is not a tag.
  EXPECT_EQ(image_pull_query("127.0.0.1:5000/x"), "fromImage=127.0.0.1%3A5000%2Fx&tag=latest");
  EXPECT_EQ(image_pull_query("x@sha256:ab"), "fromImage=x%40sha256%3Aab");
}

TEST(DockerRequests, ParsesPortsAsDockerDoes) {
  using P = PortBinding;
  EXPECT_EQ(parse_port_spec("1883"), (std::vector<P>{{"1883/tcp", "", ""}}));
  EXPECT_EQ(parse_port_spec("8080:80/udp"), (std::vector<P>{{"80/udp", "", "8080"}}));
  EXPECT_EQ(parse_port_spec("0.0.0.0:1883:1883"),
            (std::vector<P>{{"1883/tcp", "0.0.0.0", "1883"}}));
  EXPECT_EQ(parse_port_spec("127.0.0.1::80"), (std::vector<P>{{"80/tcp", "127.0.0.1", ""}}));
  EXPECT_EQ(parse_port_spec("[::1]:9884:8884/tcp"), (std::vector<P>{{"8884/tcp", "::1", "9884"}}));
  EXPECT_EQ(parse_port_spec("8000-8001:9000-9001"),
            (std::vector<P>{{"9000/tcp", "", "8000"}, {"9001/tcp", "", "8001"}}));
  for (const std::string bad :
       {"0:80", "80:70000", "8000-8002:9000-9001", "9-8", "a:b:c:d", "80/icmp", "[::1]80:80", ""}) {
    EXPECT_THROW(parse_port_spec(bad), std::invalid_argument) << bad;
  }
}

TEST(DockerRequests, ParsesDevicesWithDefaults) {
  EXPECT_EQ(parse_device_spec("/dev/video0"), (DeviceMapping{"/dev/video0", "/dev/video0", "rwm"}));
  EXPECT_EQ(parse_device_spec("/dev/sda:/dev/xvdc:r"),
            (DeviceMapping{"/dev/sda", "/dev/xvdc", "r"}));
  for (const std::string bad :
       {"dev/sda", "/dev/sda:xvdc", "/dev/sda:/dev/x:rx", "/dev/a:/b:rr", "/a:/b:r:extra"}) {
    EXPECT_THROW(parse_device_spec(bad), std::invalid_argument) << bad;
  }
}

ServiceInfo service_with_mounts(std::vector<MountInfo> mounts) {
  ServiceInfo service;
  service.name = "svc";
  service.image = "img";
  service.mounts = std::move(mounts);
  return service;
}

TEST(DockerRequests, BindsAreCleanedAndKeepReadOnly) {
  const std::vector<VolumeInfo> volumes = {{"conf", "var/db/baetyl/conf/../conf"},
                                           {"data", "/var/db/baetyl/data"}};
  auto binds = service_binds(
      service_with_mounts({{"conf", "etc/baetyl", true}, {"data", "./data//x/..", false}}), volumes,
      "/work");
  EXPECT_EQ(binds, (std::vector<std::string>{"/work/var/db/baetyl/conf:/etc/baetyl:ro",
                                             "/work/var/db/baetyl/data:/data:rw"}));
}

TEST(DockerRequests, BindsCannotLeaveTheirRoots) {
  const std::vector<VolumeInfo> volumes = {{"up", "../outside"}, {"ok", "data"}, {"colon", "a:b"}};
  auto fails = [&](const MountInfo& mount, const std::string& reason) {
    try {
      service_binds(service_with_mounts({mount}), volumes, "/work");
      ADD_FAILURE() << mount.path << ": no error";
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr(reason)) << mount.path;
    }
  };
  fails({"up", "x"}, "mounts[0]: volume 'up' path '../outside' leaves the work directory");
  fails({"ok", "../../etc"}, "mounts[0].path '../../etc' must name a directory below /");
  fails({"ok", "a/.."}, "must name a directory below /");
  fails({"ok", "var/run/baetyl.sock"}, "is where the master socket goes");
  fails({"colon", "x"}, "a path with ':' cannot be bound by Docker");
  fails({"nope", "x"}, "volume 'nope' is not declared");
}

TEST(DockerRequests, AnImageGoesIntoAPathOnlyWhenItIsAReference) {
  EXPECT_TRUE(is_image_reference("127.0.0.1:5000/a_b/c-d.e:1.0"));
  EXPECT_TRUE(is_image_reference("x@sha256:ab"));
  for (const std::string bad : {"", "/x", "x?y", "x#y", "x y", "../x", "x%2F"}) {
    EXPECT_FALSE(is_image_reference(bad)) << bad;
  }
  ServiceInfo service;
  service.image = "x/json?all=1";
  EXPECT_THAT(check_docker_keys(service),
              ::testing::ElementsAre("image: 'x/json?all=1' is not an image reference (letters, "
                                     "digits and . _ - / : @, starting with a letter or digit)"));
}

TEST(DockerRequests, ChecksWhatDockerWouldRefuse) {
  ServiceInfo service;
  service.image = "hub.baidubce.com/baetyl/baetyl-hub:latest";
  service.ports = {"1883:1883", "99999"};
  service.devices = {"/dev/a:/dev/b:x"};
  service.resources.memory.swap.bytes = 1 << 30;
  auto problems = check_docker_keys(service);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_THAT(problems[0], HasSubstr("ports[1]: '99999': container port '99999' is not a port"));
  EXPECT_THAT(problems[1], HasSubstr("devices[0]: '/dev/a:/dev/b:x': permissions 'x'"));
  EXPECT_THAT(problems[2], HasSubstr("resources.memory.swap: needs resources.memory.limit"));

  service = {};
  service.image = "timer@sha256:0123";
  service.resources.memory.limit.bytes = 1 << 20;
  EXPECT_THAT(check_docker_keys(service),
              ::testing::ElementsAre(HasSubstr("resources.memory.limit: Docker's smallest")));
  service.resources.memory.limit.bytes = 512 << 20;
  service.resources.memory.swap.bytes = 256 << 20;
  EXPECT_THAT(check_docker_keys(service),
              ::testing::ElementsAre(HasSubstr("must not be less than resources.memory.limit")));
  service.resources.memory.swap.bytes = 1 << 30;
  EXPECT_TRUE(check_docker_keys(service).empty());
}

InstanceSpec full_spec() {
  InstanceSpec spec;
  spec.service = "hub";
  spec.instance = "hub.i1";
  spec.info.name = "hub";
  spec.info.image = "hub.baidubce.com/baetyl/baetyl-hub:latest";
  spec.info.args = {"-c", "etc/baetyl/service.yml"};
  spec.info.ports = {"127.0.0.1:1883:1883", "8080:8080/udp"};
  spec.info.devices = {"/dev/null:/dev/nothing:r"};
  spec.info.resources.cpu.cpus = 1.5;
  spec.info.resources.cpu.setcpus = "0-1";
  spec.info.resources.memory.limit.bytes = 500 << 20;
  spec.info.resources.memory.swap.bytes = 1 << 30;
  spec.info.resources.pids.limit = 64;
  spec.env = {{"A", "1"}, {"BAETYL_SERVICE_NAME", "hub"}, {"A", "2"}};
  return spec;
}

TEST(DockerRequests, CreateBodyCarriesEverythingOfTheService) {
  ContainerContext context;
  context.workdir = "/usr/local";
  context.binds = {"/usr/local/var/db/baetyl/conf:/etc/baetyl:ro"};
  context.api_socket = "/var/run/baetyl.sock";
  const json body = container_create_body(full_spec(), context);

  EXPECT_EQ(body["Image"], "hub.baidubce.com/baetyl/baetyl-hub:latest");
  EXPECT_EQ(body["Cmd"], json({"-c", "etc/baetyl/service.yml"}));
  // A later entry of the same name wins, in the place of the first.
  EXPECT_EQ(body["Env"], json({"A=2", "BAETYL_SERVICE_NAME=hub"}));
  EXPECT_EQ(body["Labels"], json({{"baetyl", "baetyl"},
                                  {"service", "hub"},
                                  {"instance", "hub.i1"},
                                  {"baetyl.workdir", "/usr/local"}}));
  EXPECT_EQ(body["ExposedPorts"],
            json({{"1883/tcp", json::object()}, {"8080/udp", json::object()}}));
  const json& host = body["HostConfig"];
  EXPECT_EQ(host["Binds"], json({"/usr/local/var/db/baetyl/conf:/etc/baetyl:ro",
                                 "/var/run/baetyl.sock:/var/run/baetyl.sock:ro"}));
  EXPECT_FALSE(host.contains("ExtraHosts"));
  EXPECT_EQ(host["NetworkMode"], "baetyl");
  EXPECT_EQ(host["RestartPolicy"], json({{"Name", "no"}}));
  EXPECT_EQ(host["Init"], true);
  EXPECT_EQ(host["PortBindings"],
            json({{"1883/tcp", {{{"HostIp", "127.0.0.1"}, {"HostPort", "1883"}}}},
                  {"8080/udp", {{{"HostIp", ""}, {"HostPort", "8080"}}}}}));
  EXPECT_EQ(host["Devices"], json({{{"PathOnHost", "/dev/null"},
                                    {"PathInContainer", "/dev/nothing"},
                                    {"CgroupPermissions", "r"}}}));
  EXPECT_EQ(host["NanoCpus"], 1500000000);
  EXPECT_EQ(host["CpusetCpus"], "0-1");
  EXPECT_EQ(host["Memory"], 500 << 20);
  EXPECT_EQ(host["MemorySwap"], 1 << 30);
  EXPECT_EQ(host["PidsLimit"], 64);
  EXPECT_EQ(body["NetworkingConfig"],
            json({{"EndpointsConfig", {{"baetyl", {{"Aliases", {"hub"}}}}}}}));
  EXPECT_FALSE(host.contains("CgroupParent"));
}

TEST(DockerRequests, CgroupParentTakesTheFormOfTheDaemonsCgroupDriver) {
  EXPECT_EQ(docker_cgroup_parent("baetyl", "cgroupfs"), "/baetyl");
  EXPECT_EQ(docker_cgroup_parent("baetyl", "systemd"), "baetyl.slice");
  EXPECT_EQ(docker_cgroup_parent("", "cgroupfs"), "");
  EXPECT_EQ(docker_cgroup_parent("", "systemd"), "");

  ContainerContext context;
  context.workdir = "/usr/local";
  context.cgroup_parent = "/baetyl";
  EXPECT_EQ(container_create_body(full_spec(), context)["HostConfig"]["CgroupParent"], "/baetyl");
}

TEST(DockerRequests, CreateBodyLeavesUnsetLimitsAndTheImagesCommandAlone) {
  InstanceSpec spec;
  spec.service = spec.instance = spec.info.name = "timer";
  spec.info.image = "timer";
  ContainerContext context;
  context.workdir = "/w";
  const json body = container_create_body(spec, context);
  EXPECT_FALSE(body.contains("Cmd"));
  for (const char* key : {"NanoCpus", "CpusetCpus", "Memory", "MemorySwap", "PidsLimit"}) {
    EXPECT_FALSE(body["HostConfig"].contains(key)) << key;
  }
  // The API on TCP: no socket to bind, the host reachable as host.docker.internal.
  EXPECT_EQ(body["HostConfig"]["Binds"], json::array());
  EXPECT_EQ(body["HostConfig"]["ExtraHosts"], json({"host.docker.internal:host-gateway"}));
}

TEST(DockerEngineAddress, ContainersGetTheBoundSocketOrTheHostGateway) {
  DockerEngineOptions options;
  options.workdir = "/w";
  DockerEngine engine(options);
  EXPECT_EQ(engine.instance_api_address("unix:///w/var/run/baetyl.sock"),
            "unix:///var/run/baetyl.sock");
  EXPECT_EQ(engine.instance_api_address("tcp://0.0.0.0:50050"), "tcp://host.docker.internal:50050");
}

TEST(DockerLogs, FramesOfBothStreamsAreJoinedAndATruncatedOneCut) {
  auto frame = [](char stream, const std::string& payload) {
    std::string header{stream, 0, 0, 0, 0, 0, 0, static_cast<char>(payload.size())};
    return header + payload;
  };
  const std::string frames = frame(1, "out 1\n") + frame(2, "err 2\n") + frame(1, "out 3\n");
  EXPECT_EQ(demultiplex_logs(frames), "out 1\nerr 2\nout 3\n");
  EXPECT_EQ(demultiplex_logs(frames.substr(0, frames.size() - 3)), "out 1\nerr 2\nout");
  EXPECT_EQ(demultiplex_logs(""), "");
}

// A container's stats as Docker 20.10 returns them on cgroup v1 (trimmed).
const char* kStats = R"({
  "read": "2026-01-01T00:00:01Z", "preread": "2026-01-01T00:00:00Z",
  "cpu_stats": {"cpu_usage": {"total_usage": 2500000000, "percpu_usage": [1, 2]},
                "system_cpu_usage": 120000000000, "online_cpus": 2},
  "precpu_stats": {"cpu_usage": {"total_usage": 2000000000},
                   "system_cpu_usage": 118000000000, "online_cpus": 2},
  "memory_stats": {"usage": 10485760, "limit": 104857600,
                   "stats": {"total_inactive_file": 2097152, "cache": 4194304}}
})";

TEST(DockerStats, CpuIsTheShareOfOneCoreAndMemoryLeavesInactiveCacheOut) {
  const json figures = container_stats_figures(json::parse(kStats));
  // 0.5 s of CPU over 2 s of system time on 2 CPUs (1 s of wall time): half a core.
  EXPECT_DOUBLE_EQ(figures["cpu_stats"]["used_percent"].get<double>(), 50.0);
  EXPECT_EQ(figures["mem_stats"]["total"], 104857600u);
  EXPECT_EQ(figures["mem_stats"]["used"], 8388608u);
  EXPECT_DOUBLE_EQ(figures["mem_stats"]["used_percent"].get<double>(), 8.0);
}

TEST(DockerStats, CgroupV2AndAMissingCpuCountAreRead) {
  json stats = json::parse(kStats);
  stats["memory_stats"]["stats"] = {{"inactive_file", 1048576}};
  stats["cpu_stats"].erase("online_cpus");
  const json figures = container_stats_figures(stats);
  EXPECT_EQ(figures["mem_stats"]["used"], 9437184u);
  // The CPU count comes from percpu_usage then.
  EXPECT_DOUBLE_EQ(figures["cpu_stats"]["used_percent"].get<double>(), 50.0);
}

TEST(DockerStats, AStoppedContainerHasNoFigures) {
  // What Docker answers for a container that does not run.
  const json stopped = json::parse(
      R"({"read":"0001-01-01T00:00:00Z","cpu_stats":{"cpu_usage":{"total_usage":0},
         "system_cpu_usage":0},"precpu_stats":{"cpu_usage":{"total_usage":0}},"memory_stats":{}})");
  EXPECT_TRUE(container_stats_figures(stopped).is_null());
  EXPECT_TRUE(container_stats_figures("oops").is_null());
}

// A stand-in daemon: answers each connection on a Unix socket with the next canned response and
// records the request lines.
class FakeDaemon {
 public:
  explicit FakeDaemon(std::vector<std::string> responses) : responses_(std::move(responses)) {
    path_ = (dir_.path() / "docker.sock").string();
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path_.c_str());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(fd_, 8) != 0) {
      throw std::runtime_error("cannot listen on " + path_);
    }
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeDaemon() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string host() const { return "unix://" + path_; }
  std::vector<std::string> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void serve() {
    for (const auto& response : responses_) {
      int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        auto n = ::read(client, buffer, sizeof(buffer));
        if (n <= 0) break;
        request.append(buffer, static_cast<std::size_t>(n));
      }
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(request.substr(0, request.find("\r\n")));
      }
      std::size_t sent = 0;
      while (sent < response.size()) {
        auto n = ::write(client, response.data() + sent, response.size() - sent);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
      }
      ::close(client);
    }
  }

  testing::TempDir dir_;
  std::string path_;
  int fd_ = -1;
  std::vector<std::string> responses_;
  std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

std::string http_response(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

TEST(DockerClientExchange, AskedForACgroupParentItReadsTheDaemonsCgroupDriver) {
  FakeDaemon daemon({http_response(200, R"({"Version":"24.0.1","ApiVersion":"1.43",
                                             "MinAPIVersion":"1.12"})"),
                     http_response(200, R"({"CgroupDriver":"systemd","CgroupVersion":"2"})")});
  DockerEngineOptions options;
  options.workdir = "/w";
  options.host = daemon.host();
  options.cgroup_parent = "baetyl";
  DockerEngine engine(options);
  engine.connect();
  EXPECT_EQ(engine.cgroup_parent(), "baetyl.slice");
  EXPECT_EQ(daemon.requests(),
            (std::vector<std::string>{"GET /version HTTP/1.1", "GET /v1.41/info HTTP/1.1"}));
}

TEST(DockerClientExchange, ACgroupParentWithoutTheDaemonsDriverIsAStartError) {
  FakeDaemon daemon({http_response(200, R"({"Version":"24.0.1","ApiVersion":"1.43",
                                             "MinAPIVersion":"1.12"})"),
                     http_response(500, R"({"message":"boom"})")});
  DockerEngineOptions options;
  options.workdir = "/w";
  options.host = daemon.host();
  options.cgroup_parent = "baetyl";
  DockerEngine engine(options);
  try {
    engine.connect();
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("docker.cgroup_parent 'baetyl'"));
    EXPECT_THAT(e.what(), HasSubstr("boom"));
  }
}

TEST(DockerClientExchange, NegotiatesOnceThenPrefixesEveryPath) {
  FakeDaemon daemon({http_response(200, R"({"Version":"24.0.1","ApiVersion":"1.43",
                                             "MinAPIVersion":"1.12"})"),
                     http_response(404, R"({"message":"No such image: x:latest"})")});
  DockerEngineOptions options;
  options.workdir = "/w";
  options.host = daemon.host();
  DockerEngine engine(options);
  engine.connect();
  EXPECT_EQ(engine.api_version(), "1.41");
  auto response = engine.client().call("GET", "/images/x/json");
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.message(), "No such image: x:latest");
  EXPECT_EQ(daemon.requests(), (std::vector<std::string>{"GET /version HTTP/1.1",
                                                         "GET /v1.41/images/x/json HTTP/1.1"}));
}

TEST(DockerClientExchange, StreamsAPullLineByLine) {
  auto chunk = [](const std::string& data) {
    char size[16];
    std::snprintf(size, sizeof(size), "%zx", data.size());
    return std::string(size) + "\r\n" + data + "\r\n";
  };
  // Lines split across chunks, as a daemon may send them.
  const std::string chunked =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
      chunk("{\"status\":\"Pulling from x\"}\r\n{\"status\":\"Downlo") + chunk("ading\"}\n") +
      chunk("{\"error\":\"manifest unknown\"}") + "0\r\n\r\n";
  FakeDaemon daemon({chunked});
  DockerClient client(daemon.host());
  client.set_api_version("1.40");
  std::vector<std::string> lines;
  auto response = client.stream(
      "POST", "/images/create?" + image_pull_query("x"),
      [&](std::string_view line) { lines.emplace_back(line); }, 5s);
  EXPECT_TRUE(response.ok());
  EXPECT_EQ(lines, (std::vector<std::string>{R"({"status":"Pulling from x"})",
                                             R"({"status":"Downloading"})",
                                             R"({"error":"manifest unknown"})"}));
  EXPECT_EQ(
      daemon.requests(),
      (std::vector<std::string>{"POST /v1.40/images/create?fromImage=x&tag=latest HTTP/1.1"}));
}

TEST(DockerClientExchange, ADaemonThatIsNotThereIsAClearError) {
  testing::TempDir dir;
  DockerEngineOptions options;
  options.host = "unix://" + (dir.path() / "missing.sock").string();
  DockerEngine engine(options);
  try {
    engine.connect();
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("Docker " + options.host + ": GET /version: cannot connect: "));
    EXPECT_THAT(e.what(), HasSubstr("(is the Docker daemon running?)"));
  }
  EXPECT_THROW(DockerClient("http://localhost:2375"), std::invalid_argument);
  EXPECT_NO_THROW(DockerClient("tcp://127.0.0.1:2375"));
}

TEST(DockerClientExchange, ADaemonThatDoesNotAnswerTimesOut) {
  testing::TempDir dir;
  const std::string path = (dir.path() / "silent.sock").string();
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(fd, 8), 0);  // connections complete in the backlog; nothing answers
  DockerClient client("unix://" + path);
  try {
    client.call("GET", "/version", std::nullopt, 200ms, false);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("GET /version: no answer within 200 ms"));
  }
  ::close(fd);
}

}  // namespace
}  // namespace baetyl::master
