// baetyl-agent under the real master (native mode, master_run.h) against the cloud of test/cloud
// (mosquitto with mutual TLS, the HTTPS server): reports over both channels, application updates
// with real downloads, every failure case, and a master binary that does not start.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/testing/ports.h"
#include "cloud_run.h"
#include "master_run.h"
#include "zip_writer.h"

namespace baetyl::agent {
namespace {

namespace fs = std::filesystem;
using baetyl::testing::binary_path;
using baetyl::testing::MasterRun;
using baetyl::testing::process_alive;
using baetyl::testing::read_text;
using baetyl::testing::service;
using baetyl::testing::status_of;
using testing::CloudRun;
using ::testing::ElementsAre;
using testing::eventually;
using ::testing::HasSubstr;
using testing::ZipEntry;
using namespace std::chrono_literals;

constexpr const char* kDevice = "dev1";

// A node: the real master with the agent as one of its services, linked to `cloud`.
class AgentNode {
 public:
  explicit AgentNode(const CloudRun& cloud, const std::string& agent_env = "") {
    const fs::path db = run.workdir() / "var/db/baetyl";
    fs::create_directories(db / "agent-cert");
    fs::copy_file(cloud.pki("ca.pem"), db / "agent-cert/ca.pem");
    fs::copy_file(cloud.pki(std::string("device-") + kDevice + ".pem"),
                  db / "agent-cert/client.pem");
    fs::copy_file(cloud.pki(std::string("device-") + kDevice + ".key"),
                  db / "agent-cert/client.key");
    write_agent_conf(cloud.mqtt_address(), cloud.https_address());
    agent_env_ = agent_env;
  }

  void write_agent_conf(const std::string& mqtt, const std::string& https,
                        const std::string& cert = "var/db/baetyl/cert/client.pem") {
    std::ofstream(conf_file()) << "remote:\n  mqtt:\n    address: " << mqtt
                               << "\n    clientid: " << kDevice << "\n    username: " << kDevice
                               << "\n    ca: var/db/baetyl/cert/ca.pem\n    cert: " << cert
                               << "\n    key: var/db/baetyl/cert/client.key\n    interval: 1s\n"
                               << "  http:\n    address: " << https << "\n    timeout: 10s\n"
                               << "  report:\n    interval: 500ms\n"
                               << "ota:\n  timeout: 60s\n"
                               << "logger:\n  path: "
                               << (run.workdir() / "var/log/agent.log").string()
                               << "\n  level: debug\n";
  }
  fs::path conf_file() const {
    const fs::path file = run.workdir() / "var/db/baetyl/agent-conf/service.yml";
    fs::create_directories(file.parent_path());
    return file;
  }

  // The agent's item of services:, with `env` (a YAML flow map) when given.
  std::string agent_item(const std::string& env = "") const {
    const std::string wanted = env.empty() ? agent_env_ : env;
    return "  - name: agent\n"
           "    image: hub.baidubce.com/baetyl/baetyl-agent:latest\n"
           "    replica: 1\n"
           "    mounts:\n"
           "      - {name: agent-conf, path: etc/baetyl, readonly: true}\n"
           "      - {name: agent-cert, path: var/db/baetyl/cert, readonly: true}\n"
           "      - {name: agent-volumes, path: var/db/baetyl/volumes}\n" +
           (wanted.empty() ? "" : "    env: " + wanted + "\n");
  }
  static std::string agent_volumes() {
    return "  - {name: agent-conf, path: var/db/baetyl/agent-conf}\n"
           "  - {name: agent-cert, path: var/db/baetyl/agent-cert}\n"
           "  - {name: agent-volumes, path: var/db/baetyl}\n";
  }
  // The running application.
  void write_app(const std::string& version, const std::string& services) {
    run.write_app(version, agent_item() + services, "var/db/baetyl/application.yml",
                  agent_volumes());
  }
  // An application for the cloud to send, in staging/<name>/application.yml (outside the store).
  fs::path stage_app(const std::string& name, const std::string& version,
                     const std::string& services, const std::string& volumes = "",
                     const std::string& agent_env = "") {
    run.write_app(version, agent_item(agent_env) + services, "staging/" + name + "/application.yml",
                  agent_volumes() + volumes);
    return run.workdir() / "staging" / name;
  }

  // The agent's process, from inspect.
  std::optional<int> agent_pid() const {
    const auto entry = run.instance("agent", "agent");
    if (entry.is_null() || entry.value("status", "") != "running") return std::nullopt;
    return entry["process"].value("id", 0);
  }
  std::string agent_log() const { return read_text(run.workdir() / "var/log/agent.log"); }

  MasterRun run;

 private:
  std::string agent_env_;
};

bool reports_service(const nlohmann::json& report, const std::string& name) {
  if (!report.is_object()) return false;
  for (const auto& entry : report.value("services", nlohmann::json::array())) {
    if (entry.value("name", "") != name) continue;
    for (const auto& instance : entry.value("instances", nlohmann::json::array())) {
      if (instance.value("status", "") == "running") return true;
    }
  }
  return false;
}

// The records of `trace` in the device's last report over `via`.
nlohmann::json ota_records(const CloudRun& cloud, const std::string& via,
                           const std::string& trace) {
  const auto report = cloud.report(kDevice, via);
  if (!report.is_object() || !report.contains("ota")) return nlohmann::json::array();
  return report["ota"].value(trace, nlohmann::json::array());
}

std::vector<std::string> steps_of(const nlohmann::json& records) {
  std::vector<std::string> steps;
  for (const auto& record : records) steps.push_back(record.value("step", ""));
  return steps;
}

// Waits until both channels report `trace` ended with `step`; returns the records (MQTT's).
nlohmann::json wait_for_final(const CloudRun& cloud, const std::string& trace,
                              const std::string& step, std::chrono::milliseconds timeout = 40s) {
  auto last_is = [&](const char* via) {
    const auto records = ota_records(cloud, via, trace);
    return !records.empty() && records.back().value("step", "") == step;
  };
  EXPECT_TRUE(eventually([&] { return last_is("mqtt") && last_is("https"); }, timeout))
      << trace << ": mqtt " << ota_records(cloud, "mqtt", trace).dump() << ", https "
      << ota_records(cloud, "https", trace).dump();
  return ota_records(cloud, "mqtt", trace);
}

int count_requests(const CloudRun& cloud, const std::string& needle) {
  int count = 0;
  for (const auto& line : cloud.https_requests()) count += line.find(needle) != std::string::npos;
  return count;
}

// A package directory for the test script (what pkg holds), to be packed into a volume.
fs::path stage_package(const MasterRun& run, const std::string& name) {
  const fs::path dir = run.workdir() / "staging" / name;
  fs::create_directories(dir);
  fs::copy_file(run.workdir() / "var/db/baetyl/pkg/run.sh", dir / "run.sh");
  fs::permissions(dir / "run.sh", fs::perms::owner_all);
  std::ofstream(dir / "package.yml") << "entry: run.sh\n";
  return dir;
}

TEST(AgentE2E, ReportsOverBothChannelsAndAppliesApplicationUpdates) {
  CloudRun cloud;
  AgentNode node(cloud);
  node.write_app("v1", service("keep") + service("change"));
  ASSERT_TRUE(node.run.start()) << node.run.output();

  // Reports: the master's inspect document, over MQTT and HTTPS, with mutual TLS.
  ASSERT_TRUE(eventually([&] {
    return reports_service(cloud.report(kDevice, "mqtt"), "keep") &&
           reports_service(cloud.report(kDevice, "https"), "change");
  })) << node.agent_log();
  EXPECT_EQ(cloud.report(kDevice, "mqtt")["software"].value("conf_version", ""), "v1");
  ASSERT_TRUE(MasterRun::wait_until([&] { return node.run.last_pid("change").has_value(); }));
  const pid_t keep = *node.run.last_pid("keep");
  const auto agent = node.agent_pid();
  ASSERT_TRUE(agent.has_value());

  // v2 adds a service whose package is a volume downloaded from the cloud, and changes another.
  const auto tools = cloud.pack(stage_package(node.run, "tools"), "tools", "v1");
  EXPECT_EQ(tools.value("path", ""), "var/db/baetyl/tools/v1");
  const fs::path v2 = node.stage_app(
      "app-v2", "v2",
      service("keep") + service("change", "    env: {MODE: run, NEW: two}\n") +
          "  - name: added\n    image: test/tool\n    replica: 1\n    env: {MODE: run}\n"
          "    mounts:\n      - {name: tools, path: lib/baetyl/test/tool, readonly: true}\n"
          "      - {name: out, path: out}\n",
      "  - " + tools.dump() + "\n");
  ASSERT_FALSE(cloud
                   .ota(kDevice, {"--dir", v2.string(), "--name", "app", "--version", "v2",
                                  "--trace", "app-v2"})
                   .is_null());
  const auto records = wait_for_final(cloud, "app-v2", "UPDATED");
  EXPECT_THAT(steps_of(records), ElementsAre("RECEIVED", "UPDATING", "UPDATED")) << records.dump();
  for (const auto& record : records) EXPECT_EQ(record.value("trace", ""), "app-v2");

  ASSERT_TRUE(MasterRun::wait_until([&] { return node.run.last_pid("added").has_value(); }));
  EXPECT_EQ(node.run.pids("keep"), std::vector<pid_t>{keep}) << "unchanged, never restarted";
  ASSERT_TRUE(MasterRun::wait_until([&] { return node.run.pids("change").size() == 2u; }));
  EXPECT_EQ(node.run.env_value("change", "NEW"), "two");
  EXPECT_EQ(node.agent_pid(), agent) << "the agent's definition did not change";
  const auto inspect = node.run.inspect();
  EXPECT_EQ(inspect["software"].value("conf_version", ""), "v2");
  bool tools_listed = false;
  for (const auto& volume : inspect["volumes"]) {
    tools_listed = tools_listed ||
                   (volume.value("name", "") == "tools" && volume.value("version", "") == "v1");
  }
  EXPECT_TRUE(tools_listed) << inspect["volumes"].dump();
  // The reports show the new services.
  EXPECT_TRUE(eventually([&] {
    return reports_service(cloud.report(kDevice, "mqtt"), "added") &&
           reports_service(cloud.report(kDevice, "https"), "added");
  }));
  const fs::path db = node.run.workdir() / "var/db/baetyl";
  EXPECT_TRUE(fs::is_regular_file(db / "tools/v1/run.sh"));
  EXPECT_TRUE(fs::is_regular_file(db / "tools/v1/tools.zip"));
  EXPECT_TRUE(fs::is_regular_file(db / "app/v2/application.yml"));
  EXPECT_EQ(count_requests(cloud, "GET /volumes/tools-v1.zip 200"), 1);

  // v3 keeps the tools volume as it is (not downloaded again) and changes the agent itself: the
  // new agent takes the update up from ota.log, reports its end and removes the app/v2 volume.
  const fs::path v3 = node.stage_app(
      "app-v3", "v3",
      service("keep") + service("change", "    env: {MODE: run, NEW: three}\n") +
          "  - name: added\n    image: test/tool\n    replica: 1\n    env: {MODE: run}\n"
          "    mounts:\n      - {name: tools, path: lib/baetyl/test/tool, readonly: true}\n"
          "      - {name: out, path: out}\n",
      "  - " + tools.dump() + "\n", "{AGENT: three}");
  ASSERT_FALSE(cloud
                   .ota(kDevice, {"--dir", v3.string(), "--name", "app", "--version", "v3",
                                  "--trace", "app-v3"})
                   .is_null());
  const auto v3_records = wait_for_final(cloud, "app-v3", "UPDATED");
  EXPECT_EQ(steps_of(v3_records).back(), "UPDATED");
  EXPECT_EQ(count_requests(cloud, "GET /volumes/tools-v1.zip"), 1) << "an unchanged volume";
  EXPECT_EQ(count_requests(cloud, "GET /volumes/app-v3.zip 200"), 1);
  EXPECT_NE(node.agent_pid(), agent) << "the agent's definition changed, so it was restarted";
  EXPECT_EQ(node.run.pids("keep"), std::vector<pid_t>{keep});
  EXPECT_TRUE(eventually([&] { return !fs::exists(db / "app/v2"); })) << node.agent_log();
  EXPECT_TRUE(fs::is_regular_file(db / "app/v3/application.yml"));
  EXPECT_TRUE(fs::is_regular_file(db / "tools/v1/run.sh")) << "still in use";
  EXPECT_EQ(node.run.inspect()["software"].value("conf_version", ""), "v3");
}

// Sends an event for `trace` with `args` and waits for the report of its failure; returns the
// error of the final record.
std::string failed_update(const CloudRun& cloud, const std::string& trace,
                          std::vector<std::string> args, const std::string& step = "FAILURE") {
  args.insert(args.end(), {"--trace", trace});
  EXPECT_FALSE(cloud.ota(kDevice, args).is_null()) << trace;
  const auto records = wait_for_final(cloud, trace, step);
  return records.empty() ? "" : records.back().value("error", "");
}

// A node running v1 (the agent and "keep") whose every failed update must leave it as it is.
class AgentFailureE2E : public ::testing::Test {
 protected:
  virtual std::string services() const { return service("keep"); }

  void SetUp() override {
    node.write_app("v1", services());
    ASSERT_TRUE(node.run.start()) << node.run.output();
    ASSERT_TRUE(eventually([&] { return reports_service(cloud.report(kDevice, "https"), "keep"); }))
        << node.agent_log();
    ASSERT_TRUE(MasterRun::wait_until([&] { return node.run.last_pid("keep").has_value(); }));
    keep = *node.run.last_pid("keep");
    v1 = read_text(db / "application.yml");
    good = node.stage_app("good", "v2", service("keep"));
  }

  void unchanged(const std::string& what) {
    EXPECT_EQ(read_text(db / "application.yml"), v1) << what;
    EXPECT_EQ(node.run.inspect()["software"].value("conf_version", ""), "v1") << what;
    EXPECT_EQ(node.run.pids("keep"), std::vector<pid_t>{keep}) << what;
    EXPECT_TRUE(process_alive(keep)) << what;
  }

  CloudRun cloud;
  AgentNode node{cloud};
  const fs::path db = node.run.workdir() / "var/db/baetyl";
  pid_t keep = 0;
  std::string v1;
  fs::path good;  // a valid application to send, whatever goes wrong on the way
};

TEST_F(AgentFailureE2E, DownloadFailuresAreReported) {
  EXPECT_THAT(failed_update(cloud, "md5",
                            {"--dir", good.string(), "--name", "app", "--version", "md5", "--md5",
                             "AAAAAAAAAAAAAAAAAAAAAA=="}),
              HasSubstr("volume 'app' (var/db/baetyl/app/md5): MD5 mismatch: the event says "
                        "AAAAAAAAAAAAAAAAAAAAAA==, the download has "));
  unchanged("a wrong MD5");
  EXPECT_FALSE(fs::exists(db / "app/md5"));

  const std::string closed = "https://127.0.0.1:" + std::to_string(baetyl::testing::free_port());
  EXPECT_THAT(failed_update(cloud, "unreachable",
                            {"--dir", good.string(), "--name", "app", "--version", "unreachable",
                             "--url", closed + "/volumes/app.zip"}),
              HasSubstr("volume 'app': download failed: GET " + closed +
                        "/volumes/app.zip: Couldn't connect to server"));
  unchanged("an unreachable URL");
  EXPECT_THAT(failed_update(cloud, "missing",
                            {"--dir", good.string(), "--name", "app", "--version", "missing",
                             "--url", cloud.https_address() + "/volumes/nothing.zip"}),
              HasSubstr("answered HTTP 404"));
  unchanged("a URL the cloud does not serve");
}

TEST_F(AgentFailureE2E, HostileZipsAreRefused) {
  const fs::path zips = node.run.workdir() / "zips";
  fs::create_directories(zips);
  const std::string app_text = read_text(good / "application.yml");
  const std::string absolute = (node.run.workdir() / "absolute-evil").string();
  struct Hostile {
    std::string trace;
    std::vector<ZipEntry> entries;
    std::string error;
  };
  for (const Hostile& hostile : std::vector<Hostile>{
           {"dotdot",
            {ZipEntry::file("application.yml", app_text), ZipEntry::file("../evil", "x")},
            "refused to unpack its zip: entry '../evil' has a '..' component"},
           {"absolute",
            {ZipEntry::file("application.yml", app_text), ZipEntry::file(absolute, "x")},
            "refused to unpack its zip: entry '" + absolute + "' is an absolute path"},
           {"symlink",
            {ZipEntry::symlink("application.yml", "../../../../../etc/hostname")},
            "refused to unpack its zip: entry 'application.yml' is a symbolic link to "
            "'../../../../../etc/hostname', outside the volume"},
           {"symlink-abs",
            {ZipEntry::symlink("conf", "/etc"), ZipEntry::file("application.yml", app_text)},
            "entry 'conf' is a symbolic link to the absolute path '/etc'"},
           {"device",
            {ZipEntry::file("application.yml", app_text),
             ZipEntry::special("null", S_IFCHR | 0666)},
            "entry 'null' is not a file, directory or link"}}) {
    const fs::path zip = zips / (hostile.trace + ".zip");
    testing::write_zip(zip, hostile.entries);
    EXPECT_THAT(failed_update(cloud, hostile.trace,
                              {"--zip", zip.string(), "--name", "app", "--version", hostile.trace}),
                HasSubstr(hostile.error));
    unchanged(hostile.trace);
    EXPECT_FALSE(fs::exists(db / "app" / hostile.trace)) << hostile.trace;
  }
  EXPECT_FALSE(fs::exists(db / "app/evil"));
  EXPECT_FALSE(fs::exists(absolute));
  ASSERT_TRUE(fs::is_directory(db / "app"));
  for (const auto& entry : fs::directory_iterator(db / "app")) {
    ADD_FAILURE() << "left behind: " << entry.path();
  }
}

// The same node with "stubborn" too, which ignores SIGTERM: stopping it takes the master's grace
// (4 s), the window in which a second event finds the first one running.
class AgentBusyE2E : public AgentFailureE2E {
 protected:
  std::string services() const override {
    return service("keep") + service("stubborn", "", "ignore-term");
  }
  void SetUp() override {
    node.run.write_conf("4s");
    AgentFailureE2E::SetUp();
    ASSERT_TRUE(MasterRun::wait_until([&] { return node.run.last_pid("stubborn").has_value(); }));
  }
};

TEST_F(AgentBusyE2E, AnApplicationThatFailsToStartIsRolledBackAndASecondEventRefused) {
  // An application whose new service cannot start: the master rolls back, the agent reports it.
  fs::create_directories(db / "broken");
  std::ofstream(db / "broken/package.yml") << "entry: run.sh\n";
  std::ofstream(db / "broken/run.sh") << "#!/nonexistent/interpreter\n";
  fs::permissions(db / "broken/run.sh", fs::perms::owner_all);
  const fs::path broken =
      node.stage_app("broken-app", "v-broken",
                     service("keep") + service("stubborn", "", "ignore-term") +
                         "  - name: broken\n    image: test/broken\n    replica: 1\n"
                         "    mounts: [{name: broken, path: lib/baetyl/test/broken}]\n",
                     "  - {name: broken, path: var/db/baetyl/broken}\n");
  const std::string error = failed_update(
      cloud, "broken", {"--dir", broken.string(), "--name", "app", "--version", "broken"},
      "ROLLEDBACK");
  EXPECT_THAT(error, HasSubstr("broken"));
  EXPECT_THAT(steps_of(ota_records(cloud, "https", "broken")),
              ElementsAre("RECEIVED", "UPDATING", "ROLLINGBACK", "ROLLEDBACK"));
  EXPECT_THAT(node.run.inspect().value("error", ""), HasSubstr("broken"));
  unchanged("an application that fails to start");
  EXPECT_TRUE(MasterRun::wait_until(
      [&] { return status_of(node.run, "stubborn", "stubborn") == "running"; }));

  // A second event while one runs is refused: the first stops "stubborn".
  const fs::path slow = node.stage_app(
      "slow", "v-slow", service("keep") + service("stubborn", "    env: {MODE: run, V: 2}\n"));
  ASSERT_FALSE(cloud
                   .ota(kDevice, {"--dir", slow.string(), "--name", "app", "--version", "slow",
                                  "--trace", "slow"})
                   .is_null());
  ASSERT_TRUE(eventually([&] {
    const auto steps = steps_of(ota_records(cloud, "mqtt", "slow"));
    return std::find(steps.begin(), steps.end(), "UPDATING") != steps.end();
  }));
  EXPECT_THAT(failed_update(cloud, "second",
                            {"--dir", good.string(), "--name", "app", "--version", "second"}),
              HasSubstr("refused: the update slow is in progress"));
  wait_for_final(cloud, "slow", "UPDATED");
  EXPECT_EQ(node.run.pids("keep"), std::vector<pid_t>{keep});
  EXPECT_EQ(count_requests(cloud, "app-second.zip"), 0) << "the refused event downloaded nothing";
}

TEST(AgentE2E, AnAgentWithoutAClientCertificateDoesNotStart) {
  CloudRun cloud;
  baetyl::testing::TempDir dir;
  const auto run_agent = [&](const std::string& conf) {
    dir.write("etc/baetyl/service.yml", conf);
    baetyl::testing::ProcessOptions options;
    options.working_dir = dir.path().string();
    options.output_file = (dir.path() / "agent.out").string();
    fs::remove(options.output_file);
    baetyl::testing::Process agent({binary_path("baetyl-agent")}, options);
    const auto code = agent.wait(10s);
    EXPECT_EQ(code, 1) << agent.output();
    return agent.output();
  };
  const std::string tls = "    ca: " + cloud.pki("ca.pem").string() + "\n";
  const std::string device = "    clientid: dev1\n    username: dev1\n";
  EXPECT_THAT(
      run_agent("remote:\n  mqtt:\n    address: " + cloud.mqtt_address() + "\n" + device + tls),
      HasSubstr("etc/baetyl/service.yml: remote.mqtt.cert: is required: the device's "
                "client certificate"));
  const std::string plain = "tcp://127.0.0.1:" + std::to_string(baetyl::testing::free_port());
  EXPECT_THAT(run_agent("remote:\n  mqtt:\n    address: " + plain + "\n" + device + tls +
                        "    cert: " + cloud.pki("device-dev1.pem").string() +
                        "\n    key: " + cloud.pki("device-dev1.key").string() + "\n"),
              HasSubstr("remote.mqtt.address: '" + plain + "' is not an ssl:// address"));
  EXPECT_FALSE(fs::exists(cloud.dir() / "reports/dev1.https.json"));
  EXPECT_FALSE(fs::exists(cloud.dir() / "reports/dev1.mqtt.json"));
}

// A master started from <workdir>/bin/baetyl, as an installed one is, with the agent beside it.
void install_master(const MasterRun& run) {
  fs::create_directories(run.workdir() / "bin");
  fs::copy_file(binary_path("baetyl"), run.workdir() / "bin/baetyl");
  fs::create_symlink(binary_path("baetyl-agent"), run.workdir() / "bin/baetyl-agent");
}

TEST(AgentE2E, AMasterBinaryThatDoesNotStartIsRolledBackAndAGoodOneInstalled) {
  CloudRun cloud;
  AgentNode node(cloud);
  node.run.write_conf("1s", "update:\n  timeout: 10s\n");
  node.write_app("v1", service("svc"));
  install_master(node.run);
  const fs::path installed = node.run.workdir() / "bin/baetyl";
  ASSERT_TRUE(node.run.start(installed.string())) << node.run.output();
  ASSERT_TRUE(eventually([&] { return reports_service(cloud.report(kDevice, "mqtt"), "svc"); }))
      << node.agent_log();

  // Passes the master's check (the real binary checks), then exits at start.
  const fs::path bad = node.run.workdir() / "staging/master-bad";
  fs::create_directories(bad / "bin");
  std::ofstream(bad / "bin/baetyl") << "#!/bin/sh\nif [ \"$1\" = check ]; then exec '"
                                    << binary_path("baetyl") << "' \"$@\"; fi\nexit 3\n";
  fs::permissions(bad / "bin/baetyl", fs::perms::owner_all);
  ASSERT_FALSE(cloud
                   .ota(kDevice, {"--type", "MST", "--dir", bad.string(), "--name", "master",
                                  "--version", "bad", "--trace", "mst-bad"})
                   .is_null());
  const auto records = wait_for_final(cloud, "mst-bad", "ROLLEDBACK", 60s);
  EXPECT_THAT(steps_of(records),
              ElementsAre("RECEIVED", "UPDATING", "RESTARTING", "ROLLINGBACK", "ROLLEDBACK"))
      << records.dump();
  EXPECT_THAT(records.back().value("error", ""), HasSubstr("exited with code 3"));
  EXPECT_EQ(read_text(installed), read_text(binary_path("baetyl"))) << "the old master is back";
  EXPECT_TRUE(
      MasterRun::wait_until([&] { return status_of(node.run, "svc", "svc") == "running"; }));
  EXPECT_TRUE(node.run.process().running());

  // A good binary (the build's, one byte longer) is installed.
  const fs::path good = node.run.workdir() / "staging/master-good";
  fs::create_directories(good / "bin");
  fs::copy_file(binary_path("baetyl"), good / "bin/baetyl");
  std::ofstream(good / "bin/baetyl", std::ios::app) << "\n";
  ASSERT_FALSE(cloud
                   .ota(kDevice, {"--type", "MST", "--dir", good.string(), "--name", "master",
                                  "--version", "good", "--trace", "mst-good"})
                   .is_null());
  const auto good_records = wait_for_final(cloud, "mst-good", "UPDATED", 60s);
  EXPECT_THAT(steps_of(good_records),
              ElementsAre("RECEIVED", "UPDATING", "RESTARTING", "RESTARTED", "UPDATED"));
  EXPECT_EQ(read_text(installed), read_text(good / "bin/baetyl"));
  EXPECT_TRUE(
      MasterRun::wait_until([&] { return status_of(node.run, "svc", "svc") == "running"; }));
  // After the success, the volume of the failed binary is removed; the installed one's stays.
  EXPECT_TRUE(eventually([&] {
    return !fs::exists(node.run.workdir() / "var/db/baetyl/master/bad");
  })) << node.agent_log();
  EXPECT_TRUE(fs::exists(node.run.workdir() / "var/db/baetyl/master/good/bin/baetyl"));
}

}  // namespace
}  // namespace baetyl::agent
