// The module images as `make image` builds them (scripts/build-images.sh, run by the CTest fixture
// docker_images before these tests), run for real with `docker run`: the hub answers MQTT on a
// port published on 127.0.0.1, the SQL, Python and Node runtimes answer gRPC calls with the
// example's functions, the timer and the function manager's rules reach a hub container by name
// on a user-defined network, remote-mqtt bridges two hub containers there, the agent refuses a
// cloud link without TLS, every image carries its seed names and no build tools.
// The containers are those of the exact images the fixture built (BUILD_DIR/images/<module>.id),
// named baetyl-test-images-<pid>-<n> and removed by the test.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baetyl/testing/docker.h"
#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"
#include "function.grpc.pb.h"
#include "runtime_harness.h"

namespace baetyl::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kExample = fs::path(BAETYL_SOURCE_DIR) / "example/docker/var/db/baetyl";
const std::vector<std::string> kModules = {
    "hub",           "function-manager", "function-sql", "function-python",
    "function-node", "remote-mqtt",      "timer",        "agent"};

struct CommandResult {
  int code = -1;
  std::string output;  // stdout and stderr
};

CommandResult run(std::vector<std::string> argv, std::chrono::milliseconds timeout = 60s) {
  TempDir dir;
  ProcessOptions options;
  options.output_file = (dir.path() / "output").string();
  Process process(argv, options);
  auto code = process.wait(timeout);
  if (!code) {
    process.stop(SIGKILL);
    return {-1, "timed out: " + process.output()};
  }
  return {*code, process.output()};
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return condition();
}

std::string unique_name() {
  static std::atomic<int> next{0};
  return "baetyl-test-images-" + std::to_string(::getpid()) + "-" + std::to_string(next++);
}

// A user-defined bridge network, removed when destroyed.
class Network {
 public:
  Network() : name_(unique_name()) {
    auto result =
        run({"docker", "network", "create", "--label", "org.baetyl.test=docker-images", name_});
    if (result.code != 0) throw std::runtime_error("docker network create: " + result.output);
  }
  ~Network() { run({"docker", "network", "rm", name_}); }
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

struct ContainerOptions {
  std::string network;  // empty: the default bridge
  std::string alias;    // the container's name for the others on `network`
  // Container ports published on 127.0.0.1, each on a free port (see Container::port).
  std::vector<int> ports;
  std::vector<std::string> binds;  // host:container[:ro]
};

// `docker run -d` of an image, removed (docker rm -f) when destroyed.
class Container {
 public:
  Container(const std::string& image, ContainerOptions options) : name_(unique_name()) {
    std::vector<std::string> argv{
        "docker", "run", "-d", "--name", name_, "--label", "org.baetyl.test=docker-images"};
    if (!options.network.empty()) argv.insert(argv.end(), {"--network", options.network});
    if (!options.alias.empty()) argv.insert(argv.end(), {"--network-alias", options.alias});
    for (int port : options.ports) {
      auto host_port = free_port();
      published_.emplace_back(port, host_port);
      argv.insert(argv.end(),
                  {"-p", "127.0.0.1:" + std::to_string(host_port) + ":" + std::to_string(port)});
    }
    for (const auto& bind : options.binds) argv.insert(argv.end(), {"-v", bind});
    argv.push_back(image);
    auto result = run(argv);
    if (result.code != 0) throw std::runtime_error("docker run " + image + ": " + result.output);
  }
  ~Container() { run({"docker", "rm", "-f", name_}); }
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;

  const std::string& name() const { return name_; }
  // The host port (on 127.0.0.1) that publishes container port `port`.
  std::uint16_t port(int port) const {
    for (const auto& [container_port, host_port] : published_) {
      if (container_port == port) return host_port;
    }
    throw std::logic_error("port not published");
  }
  std::string logs() const { return run({"docker", "logs", name_}).output; }
  bool running() const {
    return trimmed(run({"docker", "inspect", "-f", "{{.State.Running}}", name_}).output) == "true";
  }
  // Waits until the container's output shows `text`; false when it exited or on timeout.
  bool wait_for_log(const std::string& text, std::chrono::milliseconds timeout = 20s) const {
    return wait_until([&] { return logs().find(text) != std::string::npos || !running(); },
                      timeout) &&
           logs().find(text) != std::string::npos;
  }
  // docker stop (SIGTERM, SIGKILL after 10 s), then the exit code: 0 when the program stopped
  // by itself on SIGTERM as PID 1, 137 when it had to be killed.
  int stop() const {
    run({"docker", "stop", "-t", "10", name_});
    auto code = run({"docker", "inspect", "-f", "{{.State.ExitCode}}", name_});
    return code.code == 0 ? std::stoi(code.output) : -1;
  }

 private:
  std::string name_;
  std::vector<std::pair<int, std::uint16_t>> published_;
};

std::string bind(const fs::path& host, const std::string& container) {
  return host.string() + ":" + container + ":ro";
}

// The example's hub (listens on 0.0.0.0:1883 in its container, routes t to t/topic).
Container start_hub(ContainerOptions options = {}) {
  options.ports.push_back(1883);
  options.binds.push_back(bind(kExample / "localhub-conf", "/etc/baetyl"));
  return Container(module_image("hub"), options);
}

// The example's second hub, remotehub (listens on 0.0.0.0:1884 in its container).
Container start_remote_hub(ContainerOptions options = {}) {
  options.ports.push_back(1884);
  options.binds.push_back(bind(kExample / "remotehub-conf", "/etc/baetyl"));
  return Container(module_image("hub"), options);
}

std::vector<std::string> mqtt_login() { return {"-u", "test", "-P", "hahaha"}; }

SubscriberOptions example_subscriber(const std::string& topic) {
  return {.topic = topic, .qos = 1, .username = "test", .password = "hahaha"};
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::unique_ptr<Function::Stub> stub_for(const Container& runtime) {
  return Function::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(runtime.port(50051)),
                                               grpc::InsecureChannelCredentials()));
}

nlohmann::json call_json(Function::Stub& stub, const std::string& function,
                         const std::string& payload) {
  FunctionMessage reply;
  auto status = call(stub, make_message(function, payload), reply);
  if (!status.ok()) {
    throw std::runtime_error("call of " + function + ": " + status.error_message());
  }
  return nlohmann::json::parse(reply.payload());
}

TEST(DockerImages, HubAnswersMqttOnALoopbackPortRoutesAndStopsOnSigterm) {
  Container hub = start_hub();
  ASSERT_TRUE(hub.wait_for_log("hub started")) << hub.logs();
  const auto port = hub.port(1883);

  SubscriberOptions options;
  options.topic = "t/#";
  options.qos = 1;
  options.username = "test";
  options.password = "hahaha";
  MosquittoSubscriber subscriber(port, options);
  ASSERT_EQ(mosquitto_pub(port, "t", R"({"id":1})", 1, mqtt_login()), 0) << hub.logs();
  auto received = subscriber.wait_for(2, 10s);
  ASSERT_EQ(received.size(), 2u) << hub.logs();
  std::multiset<std::string> topics;
  for (const auto& message : subscriber.received()) topics.insert(message.topic);
  EXPECT_EQ(topics, (std::multiset<std::string>{"t", "t/topic"}));

  EXPECT_NE(mosquitto_pub(port, "t", "x", 1, {"-u", "test", "-P", "wrong"}), 0);
  EXPECT_EQ(hub.stop(), 0) << hub.logs();
}

TEST(DockerImages, SqlRuntimeAnswersAGrpcCallWithTheExampleFilter) {
  Container sql(
      module_image("function-sql"),
      {.ports = {50051}, .binds = {bind(kExample / "function-filter-conf", "/etc/baetyl")}});
  ASSERT_TRUE(sql.wait_for_log("serving 1 function(s) on 0.0.0.0:50051")) << sql.logs();
  auto stub = stub_for(sql);

  auto passed = call_json(*stub, "sql-filter", R"({"id":1,"name":"a"})");
  EXPECT_EQ(passed, (nlohmann::json{{"qos", 1}, {"topic", "t"}, {"id", 1}, {"name", "a"}}));
  FunctionMessage reply;
  ASSERT_TRUE(call(*stub, make_message("sql-filter", R"({"id":20})"), reply).ok()) << sql.logs();
  EXPECT_EQ(reply.payload(), "");  // where id < 10: nothing for the manager to publish
  EXPECT_EQ(sql.stop(), 0) << sql.logs();
}

TEST(DockerImages, PythonRuntimeServesTheExampleSayhiFunctions) {
  Container python(
      module_image("function-python"),
      {.ports = {50051},
       .binds = {bind(kExample / "function-sayhi-conf", "/etc/baetyl"),
                 bind(kExample / "function-sayhi-code", "/var/db/baetyl/function-sayhi")}});
  ASSERT_TRUE(python.wait_for_log("listening on 0.0.0.0:50051")) << python.logs();
  auto stub = stub_for(python);
  for (const char* function : {"python27-sayhi", "python36-sayhi"}) {
    auto reply = call_json(*stub, function, R"({"id":1})");
    EXPECT_EQ(reply.value("Say", ""), "Hello Baetyl") << reply;
    EXPECT_EQ(reply.value("functionName", ""), function) << reply;
    EXPECT_EQ(reply.value("id", 0), 1) << reply;
  }
  EXPECT_EQ(python.stop(), 0) << python.logs();
}

TEST(DockerImages, NodeRuntimeServesTheExampleSayhiFunction) {
  Container node(
      module_image("function-node"),
      {.ports = {50051},
       .binds = {bind(kExample / "function-sayjs-conf", "/etc/baetyl"),
                 bind(kExample / "function-sayjs-code", "/var/db/baetyl/function-sayhi")}});
  ASSERT_TRUE(node.wait_for_log("listening on 0.0.0.0:50051")) << node.logs();
  {
    auto stub = stub_for(node);
    auto reply = call_json(*stub, "node85-sayhi", R"({"id":1})");
    EXPECT_EQ(reply.value("Say", ""), "Hello Baetyl") << reply;
    EXPECT_EQ(reply.value("functionName", ""), "node85-sayhi") << reply;
  }
  // With the client's connection closed: the runtime's graceful stop waits for open connections.
  EXPECT_EQ(node.stop(), 0) << node.logs();
}

TEST(DockerImages, TimerPublishesToAHubContainerItReachesByNameOnAUserDefinedNetwork) {
  Network network;
  Container hub = start_hub({.network = network.name(), .alias = "localhub"});
  ASSERT_TRUE(hub.wait_for_log("hub started")) << hub.logs();
  SubscriberOptions options;
  options.topic = "timer";
  options.qos = 1;
  options.username = "test";
  options.password = "hahaha";
  MosquittoSubscriber subscriber(hub.port(1883), options);

  // The example's timer configuration, ticking every 100 ms instead of 5 s.
  TempDir conf;
  std::string text = read_text(kExample / "timer-conf/service.yml");
  auto at = text.find("interval: 5s");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, std::string("interval: 5s").size(), "interval: 100ms");
  conf.write("service.yml", text);
  Container timer(module_image("timer"),
                  {.network = network.name(), .binds = {bind(conf.path(), "/etc/baetyl")}});

  auto messages = subscriber.wait_for(3, 20s);
  ASSERT_GE(messages.size(), 3u) << timer.logs() << hub.logs();
  for (const auto& payload : messages) {
    auto json = nlohmann::json::parse(payload);
    EXPECT_EQ(json.value("id", 0), 1) << payload;
    EXPECT_TRUE(json.contains("time")) << payload;
  }
  EXPECT_EQ(timer.stop(), 0) << timer.logs();
}

// Without a master it cannot start runtime instances, but its rules connect to the hub.
TEST(DockerImages, FunctionManagerConnectsItsRulesToAHubContainerItReachesByName) {
  Network network;
  Container hub = start_hub({.network = network.name(), .alias = "localhub"});
  ASSERT_TRUE(hub.wait_for_log("hub started")) << hub.logs();
  Container manager(module_image("function-manager"),
                    {.network = network.name(),
                     .binds = {bind(kExample / "function-manager-conf", "/etc/baetyl")}});
  for (const char* client : {"func-python27-sayhi-1", "func-sql-filter-1", "func-python36-sayhi-1",
                             "func-node85-sayhi-1"}) {
    EXPECT_TRUE(manager.wait_for_log(std::string("MQTT client ") + client +
                                     ": connected to tcp://localhub:1883"))
        << manager.logs();
  }
  EXPECT_EQ(manager.stop(), 0) << manager.logs();
}

// The example's bridge configuration as it is: the hubs are `localhub` and `remotehub` on the
// network, t1 goes up, t2 comes down.
TEST(DockerImages, RemoteMqttBridgesAHubContainerToASecondHubContainerAndStopsOnSigterm) {
  Network network;
  Container local = start_hub({.network = network.name(), .alias = "localhub"});
  Container remote = start_remote_hub({.network = network.name(), .alias = "remotehub"});
  ASSERT_TRUE(local.wait_for_log("hub started")) << local.logs();
  ASSERT_TRUE(remote.wait_for_log("hub started")) << remote.logs();
  Container bridge(
      module_image("remote-mqtt"),
      {.network = network.name(), .binds = {bind(kExample / "remote-mqtt-conf", "/etc/baetyl")}});
  for (const char* address : {"tcp://localhub:1883", "tcp://remotehub:1884"}) {
    EXPECT_TRUE(
        bridge.wait_for_log(std::string("MQTT client remote-mqtt-1: connected to ") + address))
        << bridge.logs();
  }

  // Published until one arrives: the bridge subscribes right after it connects.
  auto forwarded = [](std::uint16_t from, std::uint16_t to, const std::string& topic) {
    MosquittoSubscriber subscriber(to, example_subscriber(topic));
    int sent = 0;
    bool arrived = wait_until(
        [&] {
          mosquitto_pub(from, topic, "hello " + std::to_string(sent++), 1, mqtt_login());
          return !subscriber.wait_for(1, 300ms).empty();
        },
        20s);
    return arrived && subscriber.received().front().topic == topic &&
           subscriber.received().front().payload.starts_with("hello ");
  };
  EXPECT_TRUE(forwarded(local.port(1883), remote.port(1884), "t1")) << bridge.logs();
  EXPECT_TRUE(forwarded(remote.port(1884), local.port(1883), "t2")) << bridge.logs();
  EXPECT_EQ(bridge.stop(), 0) << bridge.logs();
  EXPECT_NE(bridge.logs().find("stopping: messages in flight"), std::string::npos) << bridge.logs();
}

TEST(DockerImages, RemoteMqttRefusesABadConfigurationNamingTheFileAndTheKey) {
  // The example's configuration with a rule naming a remote that is not in `remotes`.
  std::string text = read_text(kExample / "remote-mqtt-conf/service.yml");
  const std::string remote_name = "    remote:\n      name: remotehub\n";
  auto at = text.find(remote_name);
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, remote_name.size(), "    remote:\n      name: iothub\n");
  TempDir conf;
  conf.write("service.yml", text);

  const std::string name = unique_name();
  auto result =
      run({"docker", "run", "--rm", "--name", name, "--label", "org.baetyl.test=docker-images",
           "-v", bind(conf.path(), "/etc/baetyl"), module_image("remote-mqtt")});
  run({"docker", "rm", "-f", name});  // only when it timed out
  EXPECT_EQ(result.code, 1) << result.output;
  EXPECT_NE(
      result.output.find(
          "etc/baetyl/service.yml: rules[0].remote.name: no remote named 'iothub' in remotes"),
      std::string::npos)
      << result.output;
}

// The agent needs its cloud (test/cloud, on the host's loopback, which containers do not reach):
// here it reads its configuration and refuses a cloud link without TLS, naming the key.
TEST(DockerImages, AgentRefusesAPlainCloudAddress) {
  TempDir conf;
  conf.write("service.yml",
             "remote:\n  mqtt:\n    address: tcp://cloud:1883\n    clientid: d\n    username: d\n"
             "    ca: /etc/baetyl/service.yml\n    cert: /etc/baetyl/service.yml\n"
             "    key: /etc/baetyl/service.yml\n");
  auto result =
      run({"docker", "run", "--rm", "-v", bind(conf.path(), "/etc/baetyl"), module_image("agent")});
  EXPECT_EQ(result.code, 1) << result.output;
  EXPECT_NE(result.output.find("etc/baetyl/service.yml: remote.mqtt.address: 'tcp://cloud:1883' "
                               "is not an ssl:// address"),
            std::string::npos)
      << result.output;
}

TEST(DockerImages, EveryImageCarriesItsSeedNamesRunsItsProgramAndHasNoBuildTools) {
  const std::map<std::string, std::vector<std::string>> seed_names = {
      {"hub", {"baetyl-hub"}},
      {"function-manager", {"baetyl-function-manager"}},
      {"function-sql", {"baetyl-function-sql"}},
      {"function-python", {"baetyl-function-python27", "baetyl-function-python36"}},
      {"function-node", {"baetyl-function-node85"}},
      {"remote-mqtt", {"baetyl-remote-mqtt"}},
      {"timer", {"baetyl-timer"}},
      {"agent", {"baetyl-agent"}}};
  for (const auto& module : kModules) {
    SCOPED_TRACE(module);
    std::vector<std::string> names{"baetyl-" + module + ":latest"};
    for (const auto& name : seed_names.at(module)) {
      names.push_back("hub.baidubce.com/baetyl/" + name + ":latest");
    }
    for (const auto& name : names) {
      auto title = run({"docker", "image", "inspect", "-f",
                        "{{index .Config.Labels \"org.opencontainers.image.title\"}}", name});
      EXPECT_EQ(title.code, 0) << name << ": " << title.output;
      EXPECT_EQ(trimmed(title.output), "baetyl-" + module) << name;
    }

    // The program starts: every library it links is in the image.
    auto version = run({"docker", "run", "--rm", module_image(module), "--version"});
    EXPECT_EQ(version.code, 0) << version.output;
    EXPECT_NE(version.output.find("baetyl-" + module + " "), std::string::npos) << version.output;

    auto tools = run({"docker", "run", "--rm", "--entrypoint", "sh", module_image(module), "-c",
                      "dpkg-query -W -f '${Package}\\n' | grep -E "
                      "'(-dev|^gcc|^g\\+\\+|^cpp|^clang|^make|^binutils)(-[0-9.]+)?$'; "
                      "find /usr/include -type f | head -n 3"});
    EXPECT_EQ(tools.code, 0) << tools.output;
    EXPECT_EQ(trimmed(tools.output), "") << "build tools or headers in the image";
  }
}

}  // namespace
}  // namespace baetyl::testing
