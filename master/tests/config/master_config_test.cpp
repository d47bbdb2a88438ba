#include "config/master_config.h"

#include <stdlib.h>

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/testing/config_error.h"
#include "baetyl/testing/temp_dir.h"

namespace baetyl::master {
namespace {

using ::testing::HasSubstr;

std::string write(const baetyl::testing::TempDir& dir, const std::string& text) {
  std::string path = (dir.path() / "conf.yml").string();
  std::ofstream(path) << text;
  return path;
}

// Expects loading each text of `bad` as conf.yml in `dir` to fail with "<path>: <message>".
void expect_errors(const baetyl::testing::TempDir& dir,
                   const std::vector<std::pair<std::string, std::string>>& bad) {
  for (const auto& [text, message] : bad) {
    const std::string path = write(dir, text + "\n");
    EXPECT_THAT(baetyl::testing::config_error([&] { load_master_config(path); }),
                HasSubstr(path + ": " + message))
        << text;
  }
}

TEST(MasterConfig, MissingFileMeansDefaults) {
  ::unsetenv("BAETYL_MASTER_API_ADDRESS");
  ::unsetenv("OPENEDGE_MASTER_API");
  MasterConfig c = load_master_config("/nonexistent/conf.yml");
  EXPECT_EQ(c.mode, "docker");
  EXPECT_EQ(c.grace, std::chrono::seconds(30));
  EXPECT_EQ(c.server.address, "unix:///var/run/baetyl.sock");
  EXPECT_EQ(c.server.timeout, std::chrono::seconds(30));
  EXPECT_EQ(c.logger.path, "var/log/baetyl/baetyl.log");
  EXPECT_EQ(c.logger.level, "info");
  EXPECT_EQ(c.update.timeout, std::chrono::minutes(2));
  EXPECT_EQ(c.docker.cgroup_parent, "baetyl");
}

TEST(MasterConfig, AddressDefaultsToTheEnvironment) {
  ::setenv("BAETYL_MASTER_API_ADDRESS", "tcp://127.0.0.1:50050", 1);
  MasterConfig c = load_master_config("/nonexistent/conf.yml");
  ::unsetenv("BAETYL_MASTER_API_ADDRESS");
  EXPECT_EQ(c.server.address, "tcp://127.0.0.1:50050");
}

TEST(MasterConfig, ReadsEveryKey) {
  baetyl::testing::TempDir dir;
  MasterConfig c = load_master_config(write(dir, R"(
mode: native
grace: 5s
server: {address: "unix://var/run/baetyl.sock", timeout: 1m}
logger: {path: "", level: debug, format: json, age: {max: 3}, size: {max: 10}, backup: {max: 2}}
docker: {api_version: "1.38", cgroup_parent: edge_1}
update: {timeout: 45s, services: [my-agent, ota_2]}
)"));
  EXPECT_EQ(c.mode, "native");
  EXPECT_EQ(c.grace, std::chrono::seconds(5));
  EXPECT_EQ(c.server.address, "unix://var/run/baetyl.sock");
  EXPECT_EQ(c.server.timeout, std::chrono::minutes(1));
  EXPECT_EQ(c.logger.path, "");
  EXPECT_EQ(c.logger.format, "json");
  EXPECT_EQ(c.docker.api_version, "1.38");
  EXPECT_EQ(c.docker.cgroup_parent, "edge_1");
  EXPECT_EQ(c.update.timeout, std::chrono::seconds(45));
  EXPECT_EQ(c.update.services, (std::vector<std::string>{"my-agent", "ota_2"}));
}

TEST(MasterConfig, UpdateServicesAreServiceNamesListedOnce) {
  baetyl::testing::TempDir dir;
  EXPECT_TRUE(load_master_config(write(dir, "mode: native\n")).update.services.empty());
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"update: {services: agent}", "update.services: expected a list"},
      {"update: {services: [agent, '-x']}",
       "update.services[1]: '-x' is not a service name ([a-zA-Z0-9][a-zA-Z0-9_-]{0,63})"},
      {"update: {services: [agent, b, agent]}", "update.services[2]: 'agent' is listed twice"},
      {"update: {services: [[a]]}", "update.services[0]: "},
  };
  expect_errors(dir, bad);
}

TEST(MasterConfig, MetricsAddressIsOffByDefaultAndATcpAddress) {
  baetyl::testing::TempDir dir;
  EXPECT_TRUE(load_master_config(write(dir, "mode: native\n")).metrics.address.empty());
  EXPECT_EQ(load_master_config(write(dir, "metrics: {address: 'tcp://127.0.0.1:9600'}\n"))
                .metrics.address,
            "tcp://127.0.0.1:9600");
  EXPECT_EQ(load_master_config(write(dir, "metrics: {address: 'tcp://[::1]:0'}\n")).metrics.address,
            "tcp://[::1]:0");
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"metrics: {address: 'http://127.0.0.1:9600'}", "metrics.address: 'http://127.0.0.1:9600'"},
      {"metrics: {address: 'tcp://127.0.0.1'}",
       "metrics.address: 'tcp://127.0.0.1' does not match"},
      {"metrics: {address: 'tcp://127.0.0.1:70000'}", "metrics.address: port must be below 65536"},
  };
  expect_errors(dir, bad);
}

TEST(MasterConfig, BadValuesAreReportedWithFileAndKey) {
  baetyl::testing::TempDir dir;
  std::string path = write(dir, R"(
mode: k3s
grace: 30
server: {address: "http://x", timeout: 0s}
logger: {level: loud}
docker: {api_version: latest}
update: {timeout: 10ms}
)");
  try {
    load_master_config(path);
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    std::string error = e.what();
    EXPECT_THAT(error, HasSubstr(path + ": mode: 'k3s' is not one of: docker, native"));
    EXPECT_THAT(error, HasSubstr("grace: "));
    EXPECT_THAT(error, HasSubstr("server.address: 'http://x' does not match"));
    EXPECT_THAT(error, HasSubstr("server.timeout: must be at least"));
    EXPECT_THAT(error, HasSubstr("logger.level: 'loud' is not one of"));
    EXPECT_THAT(error, HasSubstr("docker.api_version: 'latest' does not match"));
    EXPECT_THAT(error, HasSubstr("update.timeout: must be at least 100ms"));
  }
}

TEST(MasterConfig, CgroupParentIsOneNameOrEmpty) {
  baetyl::testing::TempDir dir;
  EXPECT_EQ(load_master_config(write(dir, "docker: {cgroup_parent: ''}\n")).docker.cgroup_parent,
            "");
  std::vector<std::pair<std::string, std::string>> bad;
  for (const char* name : {"/baetyl", "a/b", "baetyl.slice", "edge-1", "a b"}) {
    bad.emplace_back(std::string("docker: {cgroup_parent: '") + name + "'}",
                     "docker.cgroup_parent: must be empty or one name");
  }
  expect_errors(dir, bad);
}

TEST(MasterConfig, UnknownKeysAreListed) {
  baetyl::testing::TempDir dir;
  std::vector<std::string> unknown;
  load_master_config(write(dir, "mode: native\nmodes: docker\n"), &unknown);
  EXPECT_EQ(unknown, (std::vector<std::string>{"modes"}));
}

}  // namespace
}  // namespace baetyl::master
