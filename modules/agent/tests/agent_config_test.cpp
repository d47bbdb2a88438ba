// The agent's keys: defaults, derived addresses and topics, and the errors that name the key.
#include "agent_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/testing/temp_dir.h"

namespace baetyl::agent {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class AgentConfigTest : public ::testing::Test {
 protected:
  AgentConfigTest() {
    for (const char* file : {"ca.pem", "client.pem", "client.key"}) dir_.write(file, "pem");
  }
  std::string file(const char* name) const { return (dir_.path() / name).string(); }
  // remote.mqtt with every required key, then `extra` (YAML at the top level).
  std::string minimal(const std::string& address = "ssl://cloud.example.com:8884",
                      const std::string& extra = "") const {
    return "remote:\n  mqtt:\n    address: " + address +
           "\n    clientid: dev-1\n    username: dev-1\n    ca: " + file("ca.pem") +
           "\n    cert: " + file("client.pem") + "\n    key: " + file("client.key") + "\n" + extra;
  }
  static AgentConfig parse(const std::string& text) {
    return config::load_string<AgentConfig>(text, "service.yml");
  }
  static std::string error_of(const std::string& text) {
    try {
      parse(text);
    } catch (const config::ConfigError& e) {
      return e.what();
    }
    return "";
  }

  baetyl::testing::TempDir dir_;
};

TEST_F(AgentConfigTest, DefaultsAreTheOriginals) {
  const AgentConfig c = parse(minimal());
  EXPECT_EQ(c.report_topic(), "$baidu/iot/edge/dev-1/core/forward");
  EXPECT_EQ(c.desire_topic(), "$baidu/iot/edge/dev-1/core/backward");
  EXPECT_EQ(c.report.interval, 20s);
  EXPECT_EQ(c.ota.timeout, 5min);
  EXPECT_EQ(c.ota.log_path, "var/db/baetyl/volumes/ota.log");
  EXPECT_EQ(c.ota.volume_max.bytes, 1ULL << 30);
  EXPECT_EQ(c.http.timeout, 30s);
  EXPECT_EQ(c.mqtt.timeout, 30s);
  EXPECT_EQ(c.mqtt.interval, 1min);
  EXPECT_EQ(c.mqtt.keepalive, 1min);
  EXPECT_FALSE(c.mqtt.clean_session);
  EXPECT_EQ(c.mqtt.buffer_size, 10);
  // HTTPS on the MQTT host, default port; the report path on it.
  EXPECT_EQ(c.http_address(), "https://cloud.example.com");
  EXPECT_EQ(c.report_address(), "https://cloud.example.com");
  EXPECT_EQ(c.report_path(), "/v1/edge/info");
  EXPECT_EQ(c.report_url(), "https://cloud.example.com/v1/edge/info");
  // The MQTT client subscribes to the desire topic at QoS 1; HTTPS uses the MQTT TLS files.
  const auto mqtt = c.mqtt_client_config();
  ASSERT_EQ(mqtt.subscriptions.size(), 1u);
  EXPECT_EQ(mqtt.subscriptions[0].topic, "$baidu/iot/edge/dev-1/core/backward");
  EXPECT_EQ(mqtt.subscriptions[0].qos, 1);
  const auto https = c.http_options();
  EXPECT_EQ(https.ca, file("ca.pem"));
  EXPECT_EQ(https.cert, file("client.pem"));
  EXPECT_EQ(https.key, file("client.key"));
  EXPECT_EQ(https.timeout, 30s);
}

TEST_F(AgentConfigTest, EveryKeyCanBeSet) {
  const AgentConfig c = parse(minimal("ssl://[::1]:8884",
                                      "  http:\n    address: https://api.example.com:8443/edge\n"
                                      "    timeout: 5s\n    ca: " +
                                          file("ca.pem") +
                                          "\n  report:\n    url: /v3/edge/info\n"
                                          "    topic: devices/%s/report\n    interval: 2s\n"
                                          "  desire:\n    topic: devices/%s/desire/#\n"
                                          "ota:\n  timeout: 1m\n  logger:\n    path: x/ota.log\n"
                                          "  volume:\n    max: 10m\n    entries: 100\n"));
  EXPECT_EQ(c.report_topic(), "devices/dev-1/report");
  EXPECT_EQ(c.desire_topic(), "devices/dev-1/desire/#");
  EXPECT_EQ(c.report.interval, 2s);
  EXPECT_EQ(c.report_address(), "https://api.example.com:8443");
  EXPECT_EQ(c.report_path(), "/edge/v3/edge/info");
  EXPECT_EQ(c.http.timeout, 5s);
  EXPECT_EQ(c.ota.timeout, 1min);
  EXPECT_EQ(c.ota.log_path, "x/ota.log");
  EXPECT_EQ(c.ota.volume_max.bytes, 10u << 20);
  EXPECT_EQ(c.ota.volume_entries_max, 100u);

  const AgentConfig absolute =
      parse(minimal("ssl://[::1]:8884", "  report:\n    url: https://r.example.com/in?k=1\n"));
  EXPECT_EQ(absolute.http_address(), "https://[::1]");
  EXPECT_EQ(absolute.report_address(), "https://r.example.com");
  EXPECT_EQ(absolute.report_path(), "/in?k=1");
  EXPECT_EQ(absolute.report_url(), "https://r.example.com/in?k=1");
}

TEST_F(AgentConfigTest, APlainAddressIsAnErrorNamingTheKey) {
  EXPECT_THAT(error_of(minimal("tcp://cloud.example.com:1883")),
              HasSubstr("service.yml: remote.mqtt.address: 'tcp://cloud.example.com:1883' is not "
                        "an ssl:// address"));
  EXPECT_THAT(error_of(minimal("ssl://cloud:8884", "  http:\n    address: http://cloud\n")),
              HasSubstr("service.yml: remote.http.address: must be an https:// address"));
  EXPECT_THAT(error_of(minimal("ssl://cloud:8884", "  report:\n    url: http://cloud/r\n")),
              HasSubstr("remote.report.url: must be a path (/v1/edge/info) or an https:// URL"));
}

TEST_F(AgentConfigTest, TheTlsFilesAndTheDeviceAreRequired) {
  const std::string error = error_of("remote:\n  mqtt:\n    address: ssl://cloud:8884\n");
  EXPECT_THAT(error, HasSubstr("remote.mqtt.clientid: is required"));
  EXPECT_THAT(error, HasSubstr("remote.mqtt.username: is required"));
  EXPECT_THAT(error, HasSubstr("remote.mqtt.ca: is required"));
  EXPECT_THAT(error, HasSubstr("remote.mqtt.cert: is required: the device's client certificate"));
  EXPECT_THAT(error, HasSubstr("remote.mqtt.key: is required"));
  EXPECT_THAT(error_of(""), HasSubstr("remote.mqtt.address: is required"));

  std::string text = minimal();
  text.replace(text.find(file("client.pem")), file("client.pem").size(), file("missing.pem"));
  EXPECT_THAT(error_of(text),
              HasSubstr("remote.mqtt.cert: '" + file("missing.pem") + "' cannot be read"));
}

TEST_F(AgentConfigTest, BadTopicsAndValuesAreErrorsNamingTheKey) {
  EXPECT_THAT(error_of(minimal("ssl://c:1", "  report:\n    topic: a/+/%s\n")),
              HasSubstr("remote.report.topic: 'a/+/dev-1': topic name must not contain wildcards"));
  EXPECT_THAT(error_of(minimal("ssl://c:1", "  desire:\n    topic: a/#/%s\n")),
              HasSubstr("remote.desire.topic: 'a/#/dev-1'"));
  EXPECT_THAT(error_of(minimal("ssl://c:1", "  mqtt_extra: 1\nota:\n  timeout: 10ms\n")),
              HasSubstr("ota.timeout: must be at least 1s"));
  std::string subscribed = minimal();
  subscribed.insert(subscribed.find("    clientid"), "    subscriptions: [{topic: a, qos: 1}]\n");
  EXPECT_THAT(error_of(subscribed),
              HasSubstr("remote.mqtt.subscriptions: is not used by the agent"));
}

TEST(ExpandTopic, ReplacesEveryPercentS) {
  EXPECT_EQ(expand_topic("$baidu/iot/edge/%s/core/forward", "d"), "$baidu/iot/edge/d/core/forward");
  EXPECT_EQ(expand_topic("a/%s/b/%s", "d"), "a/d/b/d");
  EXPECT_EQ(expand_topic("fixed", "d"), "fixed");
}

TEST(SplitHttpsUrl, SplitsOriginAndTarget) {
  EXPECT_EQ(split_https_url("https://h:1/a/b?c=d"),
            std::make_pair(std::string("https://h:1"), std::string("/a/b?c=d")));
  EXPECT_EQ(split_https_url("https://h"),
            std::make_pair(std::string("https://h"), std::string("/")));
  EXPECT_EQ(split_https_url("https://h?x"),
            std::make_pair(std::string("https://h"), std::string("/?x")));
  EXPECT_THROW(split_https_url("http://h/a"), std::invalid_argument);
  EXPECT_THROW(split_https_url("https://"), std::invalid_argument);
  EXPECT_THROW(split_https_url("https:///x"), std::invalid_argument);
}

}  // namespace
}  // namespace baetyl::agent
