#include "config/app_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/testing/config_error.h"

namespace baetyl::master {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

AppConfig parse(const std::string& text) {
  return config::load_string<AppConfig>(text, "application.yml");
}

std::string error_of(const std::string& text) {
  return baetyl::testing::config_error([&] { parse(text); });
}

TEST(AppConfig, EmptyDocumentHasNoServices) {
  AppConfig app = parse("");
  EXPECT_TRUE(app.services.empty());
  EXPECT_TRUE(app.volumes.empty());
}

TEST(AppConfig, ReadsEveryKeyOfTheDocs) {
  AppConfig app = parse(R"(
version: v2
services:
  - name: localhub
    image: hub.baidubce.com/baetyl/baetyl-hub:latest
    replica: 2
    ports: ["0.0.0.0:1883:1883", "1884:1884/tcp", "8080", "[::1]:9884:8884"]
    devices: ["/dev/video0", "/dev/sda:/dev/xvdc:r"]
    mounts:
      - {name: conf, path: etc/baetyl, readonly: true}
      - {name: data, path: var/db/baetyl/data}
    args: ["-c", "conf/conf.yml"]
    env: {version: v1}
    restart:
      retry: {max: 3}
      policy: on-failure
      backoff: {min: 2s, max: 1m, factor: 1.5}
    resources:
      cpu: {cpus: 1.5, setcpus: "0-2"}
      memory: {limit: 500m, swap: 1g}
      pids: {limit: 100}
volumes:
  - {name: conf, path: var/db/baetyl/conf}
  - {name: data, path: var/db/baetyl/data}
)");
  ASSERT_EQ(app.services.size(), 1u);
  const auto& s = app.services[0];
  EXPECT_EQ(app.version, "v2");
  EXPECT_EQ(s.replica, 2);
  EXPECT_EQ(s.ports.size(), 4u);
  EXPECT_EQ(s.devices.size(), 2u);
  ASSERT_EQ(s.mounts.size(), 2u);
  EXPECT_TRUE(s.mounts[0].readonly);
  EXPECT_FALSE(s.mounts[1].readonly);
  EXPECT_EQ(s.args, (std::vector<std::string>{"-c", "conf/conf.yml"}));
  EXPECT_EQ(s.env.at("version"), "v1");
  EXPECT_EQ(s.restart.retry.max, 3);
  EXPECT_EQ(s.restart.policy, "on-failure");
  EXPECT_EQ(s.restart.backoff.min, std::chrono::seconds(2));
  EXPECT_EQ(s.restart.backoff.max, std::chrono::minutes(1));
  EXPECT_DOUBLE_EQ(s.restart.backoff.factor, 1.5);
  EXPECT_DOUBLE_EQ(s.resources.cpu.cpus, 1.5);
  EXPECT_EQ(s.resources.cpu.setcpus, "0-2");
  EXPECT_EQ(s.resources.memory.limit.bytes, 500ull << 20);
  EXPECT_EQ(s.resources.memory.swap.bytes, 1ull << 30);
  EXPECT_EQ(s.resources.pids.limit, 100);
  EXPECT_EQ(volumes_of(app, s).size(), 2u);
}

TEST(AppConfig, DefaultsAreThoseOfTheDocs) {
  AppConfig app = parse("services: [{name: a, image: b}]");
  const auto& s = app.services[0];
  EXPECT_EQ(s.replica, 0);
  EXPECT_EQ(s.restart.policy, "always");
  EXPECT_FALSE(s.restart.retry.max.has_value());
  EXPECT_EQ(s.restart.backoff.min, std::chrono::seconds(1));
  EXPECT_EQ(s.restart.backoff.max, std::chrono::minutes(5));
  EXPECT_DOUBLE_EQ(s.restart.backoff.factor, 2);
}

TEST(AppConfig, ReportsEveryProblemWithItsKey) {
  std::string error = error_of(R"(
services:
  - name: -bad
    replica: -1
    restart: {policy: sometimes, backoff: {min: 2m, max: 1m, factor: 0.5}}
    mounts: [{name: missing, path: etc}]
  - name: ok
    image: x
  - name: ok
    image: y
volumes:
  - {name: v, path: ../outside}
  - {name: v, path: a}
)");
  EXPECT_THAT(error, HasSubstr("application.yml: services[0].name: '-bad' does not match"));
  EXPECT_THAT(error, HasSubstr("services[0].image: is required"));
  EXPECT_THAT(error, HasSubstr("services[0].replica: must be at least 0"));
  EXPECT_THAT(error, HasSubstr("services[0].restart.policy: 'sometimes' is not one of"));
  EXPECT_THAT(error, HasSubstr("services[0].restart.backoff.max: must not be less than"));
  EXPECT_THAT(error, HasSubstr("services[0].restart.backoff.factor: must be at least"));
  EXPECT_THAT(error, HasSubstr("services[0].mounts[0].name: volume 'missing' is not declared"));
  EXPECT_THAT(error, HasSubstr("services[2].name: 'ok' is already the name of another service"));
  EXPECT_THAT(error, HasSubstr("volumes[0].path: must stay inside the work directory"));
  EXPECT_THAT(error, HasSubstr("volumes[1].name: 'v' is already the name of another volume"));
}

TEST(AppConfig, RejectsMalformedPortsDevicesAndEnv) {
  std::string error = error_of(R"(
services:
  - name: a
    image: b
    ports: ["not a port"]
    devices: ["video0"]
    env: {"A=B": c}
    mounts: [{name: v, path: ../../etc}, {name: v, path: x}, {name: v, path: ./x/}]
    resources: {cpu: {setcpus: "zero"}}
volumes: [{name: v, path: v}]
)");
  EXPECT_THAT(error, HasSubstr("services[0].ports: each entry must look like"));
  EXPECT_THAT(error, HasSubstr("services[0].devices: each entry must look like"));
  EXPECT_THAT(error, HasSubstr("services[0].env: variable names"));
  EXPECT_THAT(error, HasSubstr("services[0].mounts[0].path: must stay inside the service"));
  EXPECT_THAT(error, HasSubstr("services[0].mounts[2].path: './x/' is mounted twice"));
  EXPECT_THAT(error, HasSubstr("services[0].resources.cpu.setcpus: 'zero' does not match"));
}

TEST(AppConfig, ResolveInsideKeepsPathsUnderTheRoot) {
  EXPECT_EQ(resolve_inside("/w", "var/db/x"), "/w/var/db/x");
  EXPECT_EQ(resolve_inside("/w", "./a/../b/"), "/w/b");
  EXPECT_EQ(resolve_inside("/w", "/etc/baetyl"), "/w/etc/baetyl");
  EXPECT_EQ(resolve_inside("/w", "a/.."), "/w");
  EXPECT_EQ(resolve_inside("/w", ".."), std::nullopt);
  EXPECT_EQ(resolve_inside("/w", "a/../../b"), std::nullopt);
}

TEST(AppConfig, AMisspeltTopLevelKeyIsAnErrorNamingItAndNothingElse) {
  EXPECT_EQ(error_of("version: v1\nservice:\n  - {name: a, image: b}\n"),
            "application.yml: service: unknown key; an application has only version, services and "
            "volumes");
  // Without the check every mount would name an undeclared volume.
  std::string error = error_of(R"(
services:
  - {name: a, image: b, mounts: [{name: v, path: x}]}
  - {name: c, image: d, mounts: [{name: v, path: x}]}
volume:
  - {name: v, path: v}
)");
  EXPECT_THAT(error, HasSubstr("application.yml: volume: unknown key"));
  EXPECT_THAT(error, Not(HasSubstr("not declared")));
}

TEST(AppConfig, UnknownKeysBelowServicesAndVolumesAreLeftForWarnings) {
  std::vector<std::string> unknown;
  AppConfig app = parse_app_config(
      "services: [{name: a, image: b, imagee: c}]\nvolumes: [{name: v, path: v, mode: x}]\n",
      "application.yml", &unknown);
  EXPECT_EQ(app.services.size(), 1u);
  EXPECT_EQ(unknown, (std::vector<std::string>{"services[0].imagee", "volumes[0].mode"}));
}

TEST(AppConfig, AVolumeKeepsWhereTheAgentDownloadedItFrom) {
  std::vector<std::string> unknown;
  AppConfig app = parse_app_config(
      "services: [{name: a, image: b}]\n"
      "volumes:\n"
      "  - name: v\n"
      "    path: var/db/baetyl/v/2\n"
      "    meta: {url: 'https://cloud/v-2.zip', md5: 'a2V5', version: '2'}\n",
      "application.yml", &unknown);
  ASSERT_EQ(app.volumes.size(), 1u);
  EXPECT_EQ(app.volumes[0].meta.url, "https://cloud/v-2.zip");
  EXPECT_EQ(app.volumes[0].meta.md5, "a2V5");
  EXPECT_EQ(app.volumes[0].meta.version, "2");
  EXPECT_TRUE(unknown.empty());
}

TEST(AppConfig, AnUpdateNeedsAtLeastOneService) {
  EXPECT_NO_THROW(check_replacement(parse("services: [{name: a, image: b}]"), "new.yml"));
  try {
    check_replacement(parse("version: v2\nservices: []\n"), "new.yml");
    ADD_FAILURE() << "an application without services was accepted";
  } catch (const config::ConfigError& e) {
    EXPECT_STREQ(e.what(), "new.yml: services: an update needs at least one service");
  }
}

TEST(AppConfig, AnImagesBaseNameIsItsLastPathElementWithoutTagOrDigest) {
  EXPECT_EQ(image_base_name("hub.baidubce.com/baetyl/baetyl-agent:latest"), "baetyl-agent");
  EXPECT_EQ(image_base_name("localhost:5000/edge/baetyl-agent@sha256:0123"), "baetyl-agent");
  EXPECT_EQ(image_base_name("baetyl-agent"), "baetyl-agent");
  EXPECT_EQ(image_base_name("baetyl-agent/other:1"), "other");
}

TEST(AppConfig, TheExampleApplicationsLoad) {
  for (const char* mode : {"native", "docker"}) {
    const std::string file =
        std::string(BAETYL_SOURCE_DIR) + "/example/" + mode + "/var/db/baetyl/application.yml";
    std::vector<std::string> unknown;
    AppConfig app;
    EXPECT_NO_THROW(app = load_app_config(file, &unknown)) << file;
    EXPECT_FALSE(app.services.empty()) << file;
    EXPECT_TRUE(unknown.empty()) << file;
  }
}

TEST(AppConfig, MissingFileIsAnErrorNamingIt) {
  EXPECT_THROW(load_app_config("/nonexistent/application.yml"), config::ConfigError);
}

}  // namespace
}  // namespace baetyl::master
