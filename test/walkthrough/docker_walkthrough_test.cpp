// example/docker as `baetyl start` runs it against the real Docker daemon: the master in docker
// mode, the hub, the function manager and the timer in containers of the module images, and the
// Python, Node and SQL runtime containers the function manager starts on demand through the
// master's API. Publishing {"id":1} to `t` comes back on t/topic, t/py2hi, t/py3hi, t/node8hi and
// t/sqlfilter; {"id":20} on all of them but t/sqlfilter; the timer publishes to `timer`; and
// remote-mqtt bridges the hub and a second hub container, remotehub: t1 goes up, t2 comes down.
//
// The copy of the example is edited only so that it runs beside other tests and other masters on
// the same daemon: the hubs are published on free ports of 127.0.0.1 instead of 1883 and 1884, the
// API on a socket in the work directory, the services' names (container names and aliases on the
// shared `baetyl` network, unique on the Docker host) carry the test process's pid, and the images
// are the IDs the docker_images fixture built from this build tree (tags are shared by every build
// on the daemon). The python27 function's instances are evicted after 3 s idle instead of 10 min.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baetyl/testing/docker.h"
#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"
#include "walkthrough_support.h"

namespace baetyl::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace walkthrough;

// The example's services and the module whose image each runs.
const std::vector<std::pair<std::string, std::string>> kServices = {
    {"localhub", "hub"},
    {"function-manager", "function-manager"},
    {"function-python27-sayhi", "function-python"},
    {"function-python36-sayhi", "function-python"},
    {"function-node85-sayhi", "function-node"},
    {"function-sql-filter", "function-sql"},
    {"timer", "timer"},
    {"remotehub", "hub"},
    {"remote-mqtt", "remote-mqtt"}};

// The image names of example/docker's application.yml, by module.
const std::vector<std::pair<std::string, std::string>> kSeedImages = {
    {"baetyl-hub", "hub"},
    {"baetyl-function-manager", "function-manager"},
    {"baetyl-function-python27", "function-python"},
    {"baetyl-function-python36", "function-python"},
    {"baetyl-function-node85", "function-node"},
    {"baetyl-function-sql", "function-sql"},
    {"baetyl-timer", "timer"},
    {"baetyl-remote-mqtt", "remote-mqtt"}};

std::set<std::string> as_set(const std::vector<std::string>& names) {
  return {names.begin(), names.end()};
}

// The names among `names` that start with `prefix`.
std::set<std::string> starting_with(const std::set<std::string>& names, const std::string& prefix) {
  std::set<std::string> found;
  for (const auto& name : names) {
    if (name.rfind(prefix, 0) == 0) found.insert(name);
  }
  return found;
}

class DockerWalkthrough : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string problem = docker_problem();
    ASSERT_TRUE(problem.empty()) << problem;
    prefix_ = unique_name("walk") + "-";
    port_ = free_port();
    remote_port_ = free_port();
    socket_ = (dir_.path() / "var/run/baetyl.sock").string();
  }

  void TearDown() override {
    // Whatever a failed test left running.
    if (master_ && master_->running()) master_->stop(SIGTERM, 60s);
    for (const auto& id : containers_of(dir_.path())) docker({"rm", "-f", id});
  }

  // example/docker in the work directory, edited as the comment at the top says.
  void copy_example() {
    fs::copy(fs::path(BAETYL_SOURCE_DIR) / "example/docker", dir_.path(),
             fs::copy_options::recursive);
    const fs::path db = dir_.path() / "var/db/baetyl";
    replace_in(dir_.path() / "etc/baetyl/conf.yml", "unix:///var/run/baetyl.sock",
               "unix://" + socket_);
    const fs::path app = db / "application.yml";
    replace_in(app, "127.0.0.1:1883:1883", "127.0.0.1:" + std::to_string(port_) + ":1883");
    replace_in(app, "127.0.0.1:1884:1884", "127.0.0.1:" + std::to_string(remote_port_) + ":1884");
    for (const auto& [service, module] : kServices) {
      replace_in(app, "  - name: " + service + "\n", "  - name: " + name(service) + "\n");
    }
    for (const auto& [image, module] : kSeedImages) {
      replace_in(app, "image: hub.baidubce.com/baetyl/" + image + "\n",
                 "image: " + module_image(module) + "\n");
    }
    for (const char* conf : {"function-manager-conf/service.yml", "timer-conf/service.yml",
                             "remote-mqtt-conf/service.yml"}) {
      replace_in(db / conf, "tcp://localhub:1883", "tcp://" + name("localhub") + ":1883");
    }
    replace_in(db / "remote-mqtt-conf/service.yml", "tcp://remotehub:1884",
               "tcp://" + name("remotehub") + ":1884");
    const fs::path manager = db / "function-manager-conf/service.yml";
    for (const auto& [service, module] : kServices) {
      if (service.rfind("function-", 0) == 0 && service != "function-manager") {
        replace_in(manager, "service: " + service + "\n", "service: " + name(service) + "\n");
      }
    }
    replace_in(manager, "      max: 10\n",
               "      max: 10\n      idletime: 3s\n      evicttime: 100ms\n");
  }

  void start_master() {
    ProcessOptions options;
    options.output_file = (dir_.path() / "baetyl.out").string();
    master_ = std::make_unique<Process>(
        std::vector<std::string>{binary_path("baetyl"), "start", "-w", dir_.path().string()},
        options);
  }

  // The service `service` of the example as this test names it.
  std::string name(const std::string& service) const { return prefix_ + service; }
  // The container of instance `id` of the function manager's function `function` of `service`.
  std::string runtime(const std::string& service, const std::string& function, int id = 1) const {
    return name(service) + "." + function + "." + std::to_string(id);
  }
  std::set<std::string> containers() const { return as_set(container_names_of(dir_.path())); }
  std::string context() const {
    return (master_ ? master_->output() : "") + "\ncontainers: " +
           docker({"ps", "-a", "--filter", "label=baetyl.workdir=" + dir_.path().string()}).output;
  }

  TempDir dir_;
  std::string prefix_;
  std::uint16_t port_ = 0;
  std::uint16_t remote_port_ = 0;
  std::string socket_;
  std::unique_ptr<Process> master_;
};

TEST_F(DockerWalkthrough, ExampleAnswersOnEveryTopicThroughContainersAndSigtermRemovesThemAll) {
  ASSERT_NO_FATAL_FAILURE(copy_example());
  start_master();

  // The static services run; the runtimes (replica 0) wait for the function manager.
  const std::set<std::string> statics = {name("localhub"), name("function-manager"), name("timer"),
                                         name("remotehub"), name("remote-mqtt")};
  ASSERT_TRUE(wait_until([&] { return containers() == statics; }, 60s)) << context();
  // docker-proxy accepts on the published port before the hub listens in its container.
  ASSERT_TRUE(wait_until([&] { return mosquitto_pub(port_, "probe", "x", 0, kAuth) == 0; }, 30s))
      << context();

  MosquittoSubscriber subscriber(port_, subscriber_options());
  MosquittoSubscriber timer(port_, subscriber_options("timer"));
  check_walkthrough(port_, subscriber, [&] { return context(); });
  if (HasFatalFailure()) return;

  // The function manager started a runtime container per function, named after its instance.
  const std::set<std::string> runtimes = {runtime("function-python36-sayhi", "python36-sayhi"),
                                          runtime("function-node85-sayhi", "node85-sayhi"),
                                          runtime("function-sql-filter", "sql-filter")};
  const std::string python27_prefix = name("function-python27-sayhi") + ".python27-sayhi.";
  auto running = containers();
  for (const auto& container : runtimes) EXPECT_EQ(running.count(container), 1u) << container;
  EXPECT_FALSE(starting_with(running, python27_prefix).empty()) << context();

  // Idle for 3 s, the python27 instances are stopped by the manager; the others stay.
  EXPECT_TRUE(wait_until([&] { return starting_with(containers(), python27_prefix).empty(); }, 20s))
      << context();
  running = containers();
  for (const auto& container : runtimes) EXPECT_EQ(running.count(container), 1u) << container;
  const std::string log_path = (dir_.path() / "var/log/baetyl/baetyl.log").string();
  EXPECT_TRUE(wait_until(
      [&] {
        return read(log_path).find(" of service " + name("function-python27-sayhi") +
                                   " stopped through the API by " + name("function-manager")) !=
               std::string::npos;
      },
      5s))
      << read(log_path);

  // The next message starts one again.
  ASSERT_EQ(mosquitto_pub(port_, "t", R"({"id":2})", 1, kAuth), 0);
  EXPECT_TRUE(
      wait_until([&] { return topics_of(subscriber.received(), 2).count("t/py2hi") == 1; }, 30s))
      << context();
  EXPECT_FALSE(starting_with(containers(), python27_prefix).empty()) << context();

  // The timer publishes {"id":1,"time":...} every 5 s through the hub container.
  ASSERT_FALSE(timer.wait_for(1, 10s).empty()) << context();
  auto tick = nlohmann::json::parse(timer.received().front().payload, nullptr, false);
  EXPECT_TRUE(tick.is_object() && tick.value("id", 0) == 1 && tick.contains("time")) << tick;

  // remote-mqtt bridges the hub and remotehub by container name: t1 goes up, t2 comes down.
  ASSERT_TRUE(
      wait_until([&] { return mosquitto_pub(remote_port_, "probe", "x", 0, kAuth) == 0; }, 30s))
      << context();
  MosquittoSubscriber at_remote(remote_port_, subscriber_options("t1"));
  EXPECT_TRUE(wait_until(
      [&] {
        mosquitto_pub(port_, "t1", "up", 1, kAuth);
        return !at_remote.wait_for(1, 300ms).empty();
      },
      30s))
      << context();
  MosquittoSubscriber at_local(port_, subscriber_options("t2"));
  EXPECT_TRUE(wait_until(
      [&] {
        mosquitto_pub(remote_port_, "t2", "down", 1, kAuth);
        return !at_local.wait_for(1, 300ms).empty();
      },
      30s))
      << context();

  // SIGTERM: every container goes, the runtimes the manager started included.
  EXPECT_EQ(master_->stop(SIGTERM, 60s), 0) << master_->output();
  EXPECT_TRUE(containers().empty()) << context();
  const std::string log = read(log_path);
  EXPECT_EQ(log.find("unauthorized"), std::string::npos) << log;
  EXPECT_EQ(count_of(log, "instance " + name("localhub") + " of service " + name("localhub") +
                              " started"),
            1u)
      << log;
}

}  // namespace
}  // namespace baetyl::testing
