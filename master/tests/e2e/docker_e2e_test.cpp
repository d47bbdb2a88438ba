// The real baetyl binary in docker mode against the real Docker daemon, with test services in
// containers of the local test image (busybox; no registry is reachable). Service names carry the
// test process's pid: instance names are container names, unique on the Docker host, and the
// tests run in parallel.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/testing/docker.h"
#include "baetyl/testing/ports.h"
#include "master_run.h"

namespace baetyl::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;
using namespace std::chrono_literals;

// Records its starts and environment under /out, leaves (recording it) on SIGTERM.
constexpr const char* kRunScript =
    "n=$BAETYL_SERVICE_INSTANCE_NAME; echo start >> /out/$n.starts; env > /out/$n.env; "
    "trap 'echo stop >> /out/$n.stops; exit 0' TERM; while true; do sleep 0.1; done";

// A service of `replica` instances in the test image running `script` with sh -c, the out volume
// at /out (and `mounts`, lines of the mounts list).
std::string container_service(const std::string& name, const std::string& script, int replica = 1,
                              const std::string& extra = "", const std::string& mounts = "") {
  return "  - name: " + name + "\n    image: " + kTestImage +
         "\n    replica: " + std::to_string(replica) +
         "\n    mounts:\n      - {name: out, path: out}\n" + mounts + "    args: [/bin/sh, -c, " +
         json(script).dump() + "]\n" + extra;
}

// docker inspect of a container, null when there is none of that name or id.
json container(const std::string& name) {
  auto result = docker({"inspect", "--type", "container", name});
  if (result.code != 0) return nullptr;
  auto list = json::parse(result.output, nullptr, false);
  return list.is_array() && !list.empty() ? list[0] : json();
}

bool running(const json& container) {
  return container.is_object() && container["State"]["Running"].get<bool>();
}

// The id of the running container `name`, once there is one (other than `not_id`).
std::string wait_running(const std::string& name, const std::string& not_id = "") {
  std::string id;
  MasterRun::wait_until(
      [&] {
        auto found = container(name);
        if (!running(found) || found["Id"] == not_id) return false;
        id = found["Id"];
        return true;
      },
      20s);
  return id;
}

std::string read_out(const MasterRun& run, const std::string& file) {
  std::ifstream in(run.workdir() / "var/db/baetyl/out" / file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t count_lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// What the server on 127.0.0.1:`port` sends before it closes ("" when nothing connects).
std::string read_port(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string text;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    char buffer[256];
    for (ssize_t n; (n = ::read(fd, buffer, sizeof(buffer))) > 0;) {
      text.append(buffer, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return text;
}

class DockerE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string problem = docker_problem();
    ASSERT_TRUE(problem.empty()) << problem;
    ASSERT_NO_THROW(ensure_test_image());
  }
  void TearDown() override {
    // Whatever a failed test left running.
    if (!run_) return;
    if (run_->started() && run_->process().running()) run_->stop(SIGTERM);
    for (const auto& id : containers_of(run_->workdir())) docker({"rm", "-f", id});
  }
  MasterRun& make_run(const std::string& extra_conf = "") {
    run_ = std::make_unique<MasterRun>("docker");
    run_->write_conf("2s", "docker:\n  pull_timeout: 20s\n" + extra_conf);
    return *run_;
  }

  std::unique_ptr<MasterRun> run_;
};

TEST_F(DockerE2E, RestartsAContainerKilledWithDockerKill) {
  auto& run = make_run();
  const std::string name = unique_name("kill");
  run.write_app("v1", container_service(name, kRunScript, 1,
                                        "    restart: {backoff: {min: 100ms, max: 1s}}\n"));
  ASSERT_TRUE(run.start()) << run.output();
  const std::string first = wait_running(name);
  ASSERT_FALSE(first.empty()) << run.log();
  auto entry = run.instance(name, name);
  EXPECT_EQ(entry["container"]["id"], first);
  EXPECT_EQ(entry["container"]["name"], name);

  docker_ok({"kill", name});
  const std::string second = wait_running(name, first);
  ASSERT_FALSE(second.empty()) << run.log();
  EXPECT_TRUE(container(first).is_null()) << "the killed container is removed";
  ASSERT_TRUE(
      MasterRun::wait_until([&] { return count_lines(read_out(run, name + ".starts")) == 2; }));
  entry = run.instance(name, name);
  EXPECT_EQ(entry["restart_count"], 1);
  EXPECT_EQ(entry["container"]["id"], second);
  EXPECT_THAT(run.log(), HasSubstr("instance " + name + " of service " + name + " exit code 137"));

  EXPECT_EQ(run.stop(), 0);
  EXPECT_TRUE(containers_of(run.workdir()).empty());
}

TEST_F(DockerE2E, ResourcesPortsDevicesAndReadOnlyBindsAreInTheContainer) {
  auto& run = make_run();
  const std::string name = unique_name("res");
  const std::uint16_t port = free_port();
  run.write_app(
      "v1",
      container_service(
          name,
          "n=$BAETYL_SERVICE_INSTANCE_NAME; env > /out/$n.env; "
          "if touch /pkg/x 2>/dev/null; then echo writable; else echo read-only; fi > /out/$n.pkg; "
          "trap 'exit 0' TERM; while true; do echo hello | nc -l -p 8080 & wait $!; done",
          1,
          "    ports: [127.0.0.1:" + std::to_string(port) +
              ":8080]\n"
              "    devices: [/dev/null:/dev/baetyl-null:r]\n"
              "    resources:\n"
              "      cpu: {cpus: 0.5, setcpus: \"0\"}\n"
              "      memory: {limit: 64m, swap: 128m}\n"
              "      pids: {limit: 32}\n"
              "    env: {USER_VAR: mine}\n",
          "      - {name: pkg, path: pkg, readonly: true}\n"));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_FALSE(wait_running(name).empty()) << run.log();

  const json found = container(name);
  const json& host = found["HostConfig"];
  const std::string workdir = run.workdir().string();
  EXPECT_THAT(host["Binds"].get<std::vector<std::string>>(),
              ::testing::UnorderedElementsAre(workdir + "/var/db/baetyl/pkg:/pkg:ro",
                                              workdir + "/var/db/baetyl/out:/out:rw",
                                              run.socket() + ":/var/run/baetyl.sock:ro"));
  EXPECT_EQ(host["NanoCpus"], 500000000);
  EXPECT_EQ(host["CpusetCpus"], "0");
  EXPECT_EQ(host["Memory"], 64 << 20);
  EXPECT_EQ(host["MemorySwap"], 128 << 20);
  EXPECT_EQ(host["PidsLimit"], 32);
  EXPECT_EQ(host["RestartPolicy"]["Name"], "no");
  EXPECT_EQ(host["NetworkMode"], "baetyl");
  EXPECT_EQ(host["Devices"][0]["PathInContainer"], "/dev/baetyl-null");
  EXPECT_EQ(host["Devices"][0]["CgroupPermissions"], "r");
  EXPECT_EQ(host["PortBindings"]["8080/tcp"][0]["HostIp"], "127.0.0.1");
  EXPECT_EQ(host["PortBindings"]["8080/tcp"][0]["HostPort"], std::to_string(port));
  // docker.cgroup_parent's default: a cgroup `baetyl` at the root, in the driver's form, which
  // the container's process is in.
  const auto driver = docker({"info", "--format", "{{.CgroupDriver}}"});
  ASSERT_EQ(driver.code, 0) << driver.output;
  const bool systemd = driver.output.find("systemd") != std::string::npos;
  EXPECT_EQ(host["CgroupParent"], systemd ? "baetyl.slice" : "/baetyl");
  if (!systemd) {
    std::ifstream cgroups("/proc/" + std::to_string(found["State"]["Pid"].get<int>()) + "/cgroup");
    std::stringstream text;
    text << cgroups.rdbuf();
    EXPECT_THAT(text.str(), HasSubstr(":/baetyl/" + found["Id"].get<std::string>() + "\n"));
  }
  const json expected_labels = {
      {"baetyl", "baetyl"}, {"service", name}, {"instance", name}, {"baetyl.workdir", workdir}};
  for (const auto& [label, value] : expected_labels.items()) {
    EXPECT_EQ(found["Config"]["Labels"][label], value) << label;
  }
  EXPECT_TRUE(found["NetworkSettings"]["Networks"].contains("baetyl"));

  ASSERT_TRUE(MasterRun::wait_until([&] { return !read_out(run, name + ".pkg").empty(); }));
  EXPECT_EQ(read_out(run, name + ".pkg"), "read-only\n");
  const std::string env = read_out(run, name + ".env");
  EXPECT_THAT(env, HasSubstr("BAETYL_MASTER_API_ADDRESS=unix:///var/run/baetyl.sock\n"));
  EXPECT_THAT(env, HasSubstr("OPENEDGE_MASTER_API=unix:///var/run/baetyl.sock\n"));
  EXPECT_THAT(env, HasSubstr("BAETYL_SERVICE_MODE=docker\n"));
  EXPECT_THAT(env, HasSubstr("BAETYL_SERVICE_INSTANCE_NAME=" + name + "\n"));
  EXPECT_THAT(env, HasSubstr("USER_VAR=mine\n"));
  // The published port reaches the container.
  ASSERT_TRUE(MasterRun::wait_until([&] { return read_port(port) == "hello\n"; }, 10s));

  // Inspect reads the container's figures from its stats, in the background.
  ASSERT_TRUE(
      MasterRun::wait_until([&] { return run.instance(name, name).contains("mem_stats"); }, 15s));
  const json entry = run.instance(name, name);
  EXPECT_EQ(entry["mem_stats"]["total"], 64 << 20);
  EXPECT_GT(entry["mem_stats"]["used"].get<double>(), 0);
  EXPECT_TRUE(entry["cpu_stats"].contains("used_percent"));
  EXPECT_EQ(run.stop(), 0);
}

TEST_F(DockerE2E, SigtermRemovesEveryContainerItStarted) {
  auto& run = make_run();
  const std::string workers = unique_name("workers"), runtime = unique_name("rt");
  run.write_app(
      "v1", container_service(workers, kRunScript, 2) + container_service(runtime, kRunScript, 0));
  ASSERT_TRUE(run.start()) << run.output();
  // Services start in order after the API is up.
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.inspect()["services"].size() == 2; }));
  auto response = run.call("PUT", "/v1/services/" + runtime + "/instances/" + runtime + "-x/start",
                           "baetyl.admin", run.admin_password(), "{}");
  ASSERT_EQ(response.status, 200) << response.body;
  for (const auto& name : {workers, workers + ".i1", runtime + "-x"}) {
    ASSERT_FALSE(wait_running(name).empty()) << name << "\n" << run.log();
    ASSERT_TRUE(MasterRun::wait_until([&] { return !read_out(run, name + ".starts").empty(); }));
  }
  EXPECT_EQ(containers_of(run.workdir()).size(), 3u);

  EXPECT_EQ(run.stop(SIGTERM), 0);
  EXPECT_TRUE(containers_of(run.workdir()).empty());
  // Each was asked to stop (docker stop sends SIGTERM) and did, within the grace.
  for (const auto& name : {workers, workers + ".i1", runtime + "-x"}) {
    EXPECT_EQ(read_out(run, name + ".stops"), "stop\n") << name;
  }
}

TEST_F(DockerE2E, AContainerThatIgnoresSigtermIsKilledAfterTheGrace) {
  auto& run = make_run();
  run.write_conf("1s", "");
  const std::string name = unique_name("stubborn");
  run.write_app("v1", container_service(name, "trap '' TERM; echo up > /out/" + name +
                                                  ".up; while true; do sleep 0.1; done"));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_FALSE(wait_running(name).empty()) << run.log();
  ASSERT_TRUE(MasterRun::wait_until([&] { return !read_out(run, name + ".up").empty(); }));
  const auto before = std::chrono::steady_clock::now();
  EXPECT_EQ(run.stop(SIGTERM), 0);
  const auto took = std::chrono::steady_clock::now() - before;
  EXPECT_GE(took, 1s) << "the grace is waited for";
  EXPECT_TRUE(containers_of(run.workdir()).empty());
}

// A program that has not set up SIGTERM handling yet (a runtime still importing its modules when
// the function manager or the master stops it) ends on SIGTERM as in native mode: it does not run
// as the container's PID 1, for which the kernel drops the signal, and is not left to the kill at
// the end of the grace.
TEST_F(DockerE2E, AProgramWithoutASigtermHandlerEndsOnSigtermNotAfterTheGrace) {
  auto& run = make_run();
  run.write_conf("60s", "");
  const std::string name = unique_name("plain"), runtime = unique_name("plainrt");
  const std::string script =
      "echo $$ > /out/$BAETYL_SERVICE_INSTANCE_NAME.pid; while true; do sleep 0.1; done";
  run.write_app("v1", container_service(name, script) + container_service(runtime, script, 0));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.inspect()["services"].size() == 2; }));
  const std::string instance_path = "/v1/services/" + runtime + "/instances/" + runtime + "-x";
  auto response =
      run.call("PUT", instance_path + "/start", "baetyl.admin", run.admin_password(), "{}");
  ASSERT_EQ(response.status, 200) << response.body;
  for (const auto& instance : {name, runtime + "-x"}) {
    ASSERT_FALSE(wait_running(instance).empty()) << instance << "\n" << run.log();
    ASSERT_TRUE(MasterRun::wait_until([&] { return !read_out(run, instance + ".pid").empty(); }));
    EXPECT_NE(read_out(run, instance + ".pid"), "1\n") << instance;
  }

  // The API client gives up after 30 s, the test's stop after 20 s: far less than the grace.
  response = run.call("PUT", instance_path + "/stop", "baetyl.admin", run.admin_password(), "{}");
  EXPECT_EQ(response.status, 200) << response.body;
  EXPECT_TRUE(container(runtime + "-x").is_null());
  EXPECT_EQ(run.stop(SIGTERM, 20s), 0) << run.log();
  EXPECT_TRUE(containers_of(run.workdir()).empty());
}

TEST_F(DockerE2E, AKilledMastersContainersAreRemovedAtItsNextStartAndNoOtherMasters) {
  auto& run = make_run();
  const std::string name = unique_name("left");
  run.write_app("v1", container_service(name, kRunScript));
  ASSERT_TRUE(run.start()) << run.output();
  const std::string first = wait_running(name);
  ASSERT_FALSE(first.empty()) << run.log();
  // A container of a master in another work directory, under the same daemon.
  const std::string stranger = unique_name("stranger");
  docker_ok({"create", "--name", stranger, "--label", "baetyl=baetyl", "--label",
             "baetyl.workdir=/elsewhere", kTestImage, "sleep", "60"});

  run.stop(SIGKILL);
  EXPECT_TRUE(running(container(first))) << "a killed master stops nothing";

  ASSERT_TRUE(run.start()) << run.output();
  const std::string second = wait_running(name, first);
  ASSERT_FALSE(second.empty()) << run.log();
  EXPECT_TRUE(container(first).is_null());
  EXPECT_THAT(run.log(), HasSubstr("removing container " + name + " (" + first.substr(0, 12) +
                                   ") of service " + name + " left by a previous master"));
  EXPECT_FALSE(container(stranger).is_null()) << "another master's container stays";
  docker({"rm", "-f", stranger});
  EXPECT_EQ(run.stop(), 0);
}

TEST_F(DockerE2E, AnUnknownImageIsReportedNamingItsServiceWhileTheOthersRun) {
  auto& run = make_run();
  const std::string good = unique_name("good"), bad = unique_name("bad");
  const std::string image = "127.0.0.1:1/baetyl-test-missing:latest";  // a registry that refuses
  run.write_app("v1", container_service(good, kRunScript) + "  - name: " + bad +
                          "\n    image: " + image +
                          "\n    replica: 1\n"
                          "    restart: {backoff: {min: 500ms, max: 1s}}\n");
  int code = 0;
  {
    ProcessOptions options;
    TempDir out;
    options.output_file = (out.path() / "check").string();
    Process check({binary_path("baetyl"), "check", "-w", run.workdir().string()}, options);
    code = check.wait(30s).value_or(-1);
    EXPECT_EQ(code, 0) << check.output();
    EXPECT_THAT(check.output(), HasSubstr("service '" + bad + "': image '" + image +
                                          "' is neither local nor pullable: pull failed: "));
    EXPECT_THAT(check.output(), HasSubstr("OK!"));
  }

  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_FALSE(wait_running(good).empty()) << run.log();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.instance(bad, bad).contains("error"); }));
  const json entry = run.instance(bad, bad);
  EXPECT_EQ(entry["status"], "restarting");
  EXPECT_THAT(entry["error"].get<std::string>(),
              HasSubstr("cannot start instance '" + bad + "' of service '" + bad + "': image '" +
                        image + "' is neither local nor pullable: pull failed: "));
  EXPECT_THAT(run.log(), HasSubstr("service '" + bad + "': image '" + image +
                                   "' is neither local nor pullable"));
  // It is tried again, by its restart policy, while the other runs on.
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.instance(bad, bad)["restart_count"] >= 2; }));
  EXPECT_EQ(run.instance(good, good)["status"], "running");
  EXPECT_EQ(run.stop(), 0);
}

TEST_F(DockerE2E, APullThatHangsHoldsUpNoOtherService) {
  // A registry that accepts connections and never answers: each pull lasts docker.pull_timeout.
  LoopbackListener registry;
  auto& run = make_run();
  run.write_conf("2s", "docker:\n  pull_timeout: 2s\n");
  const std::string slow = unique_name("slow"), next = unique_name("next");
  const std::string image =
      "127.0.0.1:" + std::to_string(registry.port()) + "/baetyl-test-hanging:latest";
  run.write_app("v1", "  - name: " + slow + "\n    image: " + image +
                          "\n    replica: 1\n    restart: {backoff: {min: 1s, max: 1s}}\n" +
                          container_service(next, kRunScript));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_FALSE(wait_running(next).empty()) << run.log();
  // The pull before the start timed out; the first start of the slow service then failed at
  // once with that reason, without pulling again (which would have held up the next service).
  const std::string log = run.log();
  const std::string pulling = "pulling image " + image + "\n";
  const auto first_pull = log.find(pulling);
  ASSERT_NE(first_pull, std::string::npos) << log;
  const auto first_start = log.find("cannot start instance '" + slow + "'");
  ASSERT_NE(first_start, std::string::npos) << log;
  EXPECT_GT(log.find(pulling, first_pull + 1), first_start) << log;
  EXPECT_THAT(log, HasSubstr("service '" + slow + "': image '" + image +
                             "' is neither local nor pullable: "));
  EXPECT_EQ(run.stop(), 0);
}

TEST_F(DockerE2E, ApplicationUpdateKeepsAnUnchangedContainerAndReplacesAChangedOne) {
  auto& run = make_run();
  const std::string same = unique_name("same"), changed = unique_name("changed");
  run.write_app("v1", container_service(same, kRunScript) +
                          container_service(changed, kRunScript, 1, "    env: {V: \"1\"}\n"));
  ASSERT_TRUE(run.start()) << run.output();
  const std::string same_id = wait_running(same), changed_id = wait_running(changed);
  ASSERT_FALSE(same_id.empty() || changed_id.empty()) << run.log();

  run.write_app("v2",
                container_service(same, kRunScript) +
                    container_service(changed, kRunScript, 1, "    env: {V: \"2\"}\n"),
                "var/db/baetyl/v2/application.yml");
  auto response =
      run.call("PUT", "/v1/system/update", "baetyl.admin", run.admin_password(),
               R"({"type":"APP","path":"var/db/baetyl/v2/application.yml","trace":"t"})");
  ASSERT_EQ(response.status, 200) << response.body;
  ASSERT_TRUE(MasterRun::wait_until([&] {
    auto steps = ota_steps(run);
    return !steps.empty() && steps.back() == "UPDATED";
  })) << run.log();

  EXPECT_EQ(container(same)["Id"], same_id);
  EXPECT_EQ(count_lines(read_out(run, same + ".starts")), 1u);
  const std::string replaced = wait_running(changed, changed_id);
  ASSERT_FALSE(replaced.empty());
  EXPECT_TRUE(container(changed_id).is_null());
  ASSERT_TRUE(
      MasterRun::wait_until([&] { return count_lines(read_out(run, changed + ".starts")) == 2; }));
  EXPECT_THAT(read_out(run, changed + ".env"), HasSubstr("V=2\n"));
  EXPECT_EQ(run.inspect()["software"]["conf_version"], "v2");
  EXPECT_EQ(run.stop(), 0);
}

TEST_F(DockerE2E, AServiceInAContainerStartsAndStopsADynamicInstanceAndReachesItByName) {
  auto& run = make_run();
  const std::string runtime = unique_name("rt"), manager = unique_name("mgr");
  // Named as the function manager names runtime instances: <service>.<function>.<id>.
  const std::string instance = runtime + ".echo.1";
  // The runtime answers one line per connection on the port of its instance address; the manager
  // starts it through the master API (as the function manager does), reaches it by container
  // name on the baetyl network, and stops it again.
  const std::string runtime_script =
      "n=$BAETYL_SERVICE_INSTANCE_NAME; env > /out/$n.env; trap 'exit 0' TERM; "
      "port=${BAETYL_SERVICE_INSTANCE_ADDRESS##*:}; "
      "while true; do echo \"pong from $n\" | nc -l -p $port & wait $!; done";
  const std::string manager_script =
      "api-call PUT /v1/services/" + runtime + "/instances/" + instance +
      "/start '{\"BAETYL_SERVICE_INSTANCE_ADDRESS\":\"0.0.0.0:50051\"}' > /out/mgr.start; "
      "reply=; i=0; while [ -z \"$reply\" ] && [ $i -lt 100 ]; do "
      "reply=$(nc -w 1 " +
      instance +
      " 50051 </dev/null); i=$((i+1)); "
      "[ -z \"$reply\" ] && sleep 0.1; done; echo \"$reply\" > /out/mgr.reply; "
      "api-call PUT /v1/services/" +
      runtime + "/instances/" + instance +
      "/stop > /out/mgr.stop; trap 'exit 0' TERM; while true; do sleep 0.1; done";
  run.write_app("v1", container_service(runtime, runtime_script, 0) +
                          container_service(manager, manager_script));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return !read_out(run, "mgr.stop").empty(); }, 30s))
      << run.log();
  EXPECT_THAT(read_out(run, "mgr.start"), ::testing::StartsWith("200"));
  EXPECT_EQ(read_out(run, "mgr.reply"), "pong from " + instance + "\n");
  EXPECT_THAT(read_out(run, "mgr.stop"), ::testing::StartsWith("200"));
  const std::string env = read_out(run, instance + ".env");
  EXPECT_THAT(env, HasSubstr("BAETYL_SERVICE_INSTANCE_ADDRESS=0.0.0.0:50051\n"));
  EXPECT_THAT(env, HasSubstr("BAETYL_SERVICE_TOKEN=\n")) << "a dynamic instance has no token";
  EXPECT_TRUE(container(instance).is_null());
  EXPECT_TRUE(run.instance(runtime, instance).is_null());
  EXPECT_THAT(run.log(), HasSubstr("instance " + instance + " of service " + runtime +
                                   " stopped through the API by " + manager));
  EXPECT_EQ(run.stop(), 0);
}

TEST_F(DockerE2E, RapidRestartsNeverFindTheirNameTaken) {
  auto& run = make_run();
  const std::string flapping = unique_name("flap"), runtime = unique_name("rt");
  run.write_app(
      "v1", container_service(flapping,
                              "echo start >> /out/$BAETYL_SERVICE_INSTANCE_NAME.starts; "
                              "echo going down with 3; exit 3",
                              1, "    restart: {retry: {max: 5}, backoff: {min: 0s, max: 0s}}\n") +
                container_service(runtime, kRunScript, 0));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.inspect()["services"].size() == 2; }));
  ASSERT_TRUE(MasterRun::wait_until(
      [&] { return run.instance(flapping, flapping)["status"] == "exited"; }, 60s))
      << run.log();
  EXPECT_EQ(run.instance(flapping, flapping)["restart_count"], 5);
  EXPECT_EQ(run.instance(flapping, flapping)["last_exit"], "exit code 3");
  EXPECT_EQ(count_lines(read_out(run, flapping + ".starts")), 6u);
  // What it printed is logged before the container goes.
  EXPECT_THAT(run.log(),
              HasSubstr("instance " + flapping +
                        " exit code 3; the last lines of its output:\ngoing down with 3"));

  // The same dynamic instance started again and again: each start replaces the one before.
  const std::string path = "/v1/services/" + runtime + "/instances/" + runtime + "-1/start";
  std::string last_id;
  for (int i = 0; i < 5; ++i) {
    auto response = run.call("PUT", path, "baetyl.admin", run.admin_password(), "{}");
    ASSERT_EQ(response.status, 200) << i << ": " << response.body;
  }
  EXPECT_FALSE(wait_running(runtime + "-1").empty());
  EXPECT_EQ(containers_of(run.workdir()).size(), 1u);
  EXPECT_THAT(run.log(), Not(HasSubstr("already in use")));
  EXPECT_THAT(run.log(), Not(HasSubstr("failed to restart")));
  EXPECT_EQ(run.stop(), 0);
}

TEST_F(DockerE2E, AnApiVersionTheDaemonCannotSpeakIsACheckAndStartError) {
  auto& run = make_run("  api_version: \"9.99\"\n");
  run.write_app("v1", container_service(unique_name("never"), kRunScript));
  for (const std::string command : {"check", "start"}) {
    ProcessOptions options;
    TempDir out;
    options.output_file = (out.path() / "out").string();
    Process process({binary_path("baetyl"), command, "-w", run.workdir().string()}, options);
    EXPECT_EQ(process.wait(30s).value_or(-1), 1) << command;
    EXPECT_THAT(process.output(),
                HasSubstr("etc/baetyl/conf.yml: mode: 'docker': the Docker daemon cannot be used: "
                          "Docker unix:///var/run/docker.sock: API version 9.99 was asked for, but "
                          "the daemon supports API versions"))
        << command;
  }
  EXPECT_TRUE(containers_of(run.workdir()).empty());
}

// `baetyl list` and `baetyl logs` in docker mode: the container's id, and its output from the
// Engine API (the multiplexed stream), one service's only, followed with -f.
TEST_F(DockerE2E, ListAndLogsShowContainersAndTheirOwnOutput) {
  auto& run = make_run();
  const std::string talker = unique_name("talker");
  const std::string other = unique_name("other");
  run.write_app("v1", container_service(talker,
                                        "i=0; trap 'exit 0' TERM; while true; do "
                                        "echo \"talker line $i\"; echo \"talker err $i\" >&2; "
                                        "i=$((i+1)); sleep 0.3; done") +
                          container_service(other,
                                            "trap 'exit 0' TERM; while true; do echo "
                                            "\"other line\"; sleep 0.3; done"));
  ASSERT_TRUE(run.start()) << run.output();
  const std::string id = wait_running(talker);
  ASSERT_FALSE(id.empty()) << run.log();
  ASSERT_FALSE(wait_running(other).empty()) << run.log();
  ASSERT_TRUE(MasterRun::wait_until([&] { return status_of(run, other, other) == "running"; }));
  auto baetyl = [&](std::vector<std::string> args, int* code) {
    args.push_back("-w");
    args.push_back(run.workdir().string());
    return run_baetyl(args, code);
  };
  int code = -1;
  const std::string table = baetyl({"list"}, &code);
  EXPECT_EQ(code, 0) << table;
  EXPECT_THAT(table, HasSubstr(id.substr(0, 12)));

  ASSERT_TRUE(MasterRun::wait_until([&] {
    return baetyl({"logs", talker}, &code).find("talker err 2") != std::string::npos;
  }));
  const std::string logs = baetyl({"logs", talker}, &code);
  EXPECT_EQ(code, 0) << logs;
  EXPECT_THAT(logs, HasSubstr("Z talker line 0\n"));
  EXPECT_THAT(logs, Not(HasSubstr("other line")));
  const std::string last = baetyl({"logs", talker, "--tail", "2"}, &code);
  EXPECT_EQ(count_lines(last), 2u) << last;

  TempDir out;
  ProcessOptions options;
  options.output_file = (out.path() / "follow").string();
  Process follow(
      {binary_path("baetyl"), "logs", other, "-f", "--tail", "1", "-w", run.workdir().string()},
      options);
  EXPECT_TRUE(MasterRun::wait_until([&] { return count_lines(follow.output()) >= 4; }, 10s))
      << follow.output();
  EXPECT_THAT(follow.output(), Not(HasSubstr("talker")));
  follow.stop(SIGTERM);
  EXPECT_EQ(run.stop(), 0);
}

}  // namespace
}  // namespace baetyl::testing
