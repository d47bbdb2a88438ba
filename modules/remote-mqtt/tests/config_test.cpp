// Keys, defaults, client ID precedence and error messages of the bridge's configuration.
#include <gtest/gtest.h>

#include "baetyl/testing/config_error.h"
#include "config.h"

namespace baetyl::remote {
namespace {

using namespace std::chrono_literals;

std::string issues_of(const std::string& yaml) {
  return baetyl::testing::config_error([&] { parse_bridge_config(yaml, "service.yml"); });
}

TEST(RemoteMqttConfig, DocumentedDefaults) {
  auto c = parse_bridge_config(R"(
hub:
  address: tcp://127.0.0.1:1883
remotes:
  - name: iothub
    address: ssl://cloud.example.com:1884
rules:
  - remote:
      name: iothub
)");
  ASSERT_EQ(c.remotes.size(), 1u);
  const auto& remote = c.remotes[0].client;
  EXPECT_EQ(remote.timeout, 30s);
  EXPECT_EQ(remote.interval, 1min);
  EXPECT_EQ(remote.keepalive, 1min);
  EXPECT_FALSE(remote.clean_session);
  EXPECT_FALSE(remote.validate_subs);
  EXPECT_EQ(remote.buffer_size, 10);
  EXPECT_EQ(c.hub.buffer_size, 10);
  EXPECT_FALSE(c.hub.clean_session);
  EXPECT_EQ(c.report_interval, 1min);
  ASSERT_EQ(c.rules.size(), 1u);
  EXPECT_TRUE(c.rules[0].hub.subscriptions.empty());
  EXPECT_TRUE(c.rules[0].remote.subscriptions.empty());
}

TEST(RemoteMqttConfig, EveryKeyOfTheReferenceIsRead) {
  std::vector<std::string> unknown;
  auto c = config::load_string<BridgeConfig>(R"(
hub:
  clientid: bridge-hub
  address: tcp://127.0.0.1:1883
  username: test
  password: hahaha
  timeout: 10s
  interval: 2s
  keepalive: 30s
  cleansession: true
  validatesubs: true
  buffersize: 50
remotes:
  - name: iothub
    clientid: remote-1
    address: ssl://127.0.0.1:8883
    username: user
    password: pass
    ca: ca.pem
    cert: client.pem
    key: client.key
    insecureSkipVerify: true
    timeout: 5s
    interval: 3s
    keepalive: 20s
    cleansession: true
    validatesubs: true
    buffersize: 7
rules:
  - hub:
      clientid: rule-hub
      subscriptions:
        - topic: say
          qos: 1
        - topic: hi
    remote:
      name: iothub
      clientid: rule-remote
      subscriptions:
        - topic: remote/say
report:
  interval: 5s
)",
                                             "service.yml", &unknown);
  EXPECT_TRUE(unknown.empty()) << unknown.front();
  const auto& r = c.remotes[0];
  EXPECT_EQ(r.name, "iothub");
  EXPECT_EQ(r.client.client_id, "remote-1");
  EXPECT_EQ(r.client.username, "user");
  EXPECT_EQ(r.client.password, "pass");
  EXPECT_EQ(r.client.ca, "ca.pem");
  EXPECT_EQ(r.client.cert, "client.pem");
  EXPECT_EQ(r.client.key, "client.key");
  EXPECT_TRUE(r.client.insecure_skip_verify);
  EXPECT_EQ(r.client.timeout, 5s);
  EXPECT_EQ(r.client.interval, 3s);
  EXPECT_EQ(r.client.keepalive, 20s);
  EXPECT_TRUE(r.client.clean_session);
  EXPECT_TRUE(r.client.validate_subs);
  EXPECT_EQ(r.client.buffer_size, 7);
  EXPECT_EQ(c.report_interval, 5s);
  auto rule = resolve_rule(c, 0);
  EXPECT_EQ(rule.hub.client_id, "rule-hub");
  EXPECT_EQ(rule.remote.client_id, "rule-remote");
  EXPECT_EQ(rule.hub.subscriptions, (std::vector<mqtt::TopicInfo>{{"say", 1}, {"hi", 0}}));
  EXPECT_EQ(rule.remote.subscriptions, (std::vector<mqtt::TopicInfo>{{"remote/say", 0}}));
  EXPECT_EQ(rule.hub.username, "test");
  EXPECT_EQ(rule.hub.buffer_size, 50);
  EXPECT_EQ(rule.remote.address, "ssl://127.0.0.1:8883");
}

TEST(RemoteMqttConfig, ClientIdPrecedence) {
  auto c = parse_bridge_config(R"(
hub: {address: tcp://127.0.0.1:1883}
remotes:
  - {name: a, address: tcp://127.0.0.1:1884, clientid: remote-a}
  - {name: b, address: tcp://127.0.0.1:1885}
rules:
  - remote: {name: a}
  - remote: {name: a, clientid: rule-1}
  - hub: {clientid: own-hub}
    remote: {name: b}
)");
  // remote side: rule's, else the remote's, else the remote's name; hub side: rule's, else
  // hub.clientid, else the remote side's.
  auto r0 = resolve_rule(c, 0);
  EXPECT_EQ(r0.remote.client_id, "remote-a");
  EXPECT_EQ(r0.hub.client_id, "remote-a");
  auto r1 = resolve_rule(c, 1);
  EXPECT_EQ(r1.remote.client_id, "rule-1");
  EXPECT_EQ(r1.hub.client_id, "rule-1");
  auto r2 = resolve_rule(c, 2);
  EXPECT_EQ(r2.remote.client_id, "b");
  EXPECT_EQ(r2.hub.client_id, "own-hub");

  auto with_hub_id = parse_bridge_config(R"(
hub: {address: tcp://127.0.0.1:1883, clientid: edge}
remotes: [{name: a, address: tcp://127.0.0.1:1884}]
rules: [{remote: {name: a}}]
)");
  EXPECT_EQ(resolve_rule(with_hub_id, 0).hub.client_id, "edge");
  EXPECT_EQ(resolve_rule(with_hub_id, 0).remote.client_id, "a");
}

TEST(RemoteMqttConfig, ErrorsNameFileAndKey) {
  EXPECT_NE(issues_of("remotes: []\n").find("service.yml: hub.address: is required"),
            std::string::npos);
  auto text = issues_of(R"(
hub: {address: tcp://127.0.0.1:1883, subscriptions: [{topic: t}]}
remotes:
  - {address: tcp://127.0.0.1:1884}
  - {name: x}
  - {name: x, address: 'http://nowhere', buffersize: 0, subscriptions: [{topic: s}]}
rules:
  - remote: {name: nowhere}
  - hub: {subscriptions: [{topic: 'a/#/b', qos: 2}]}
  - remote: {name: x, subscriptions: [{qos: 1}]}
report: {interval: 1ms}
)");
  for (const char* expected : {
           "service.yml: hub.subscriptions: the bridge subscribes per rule",
           "service.yml: remotes[0].name: is required",
           "service.yml: remotes[1].address: is required",
           "service.yml: remotes[2].name: duplicate remote name 'x'",
           "service.yml: remotes[2].address: must be tcp://host:port or ssl://host:port",
           "service.yml: remotes[2].buffersize: must be at least 1",
           "service.yml: remotes[2].subscriptions: a remote has no subscriptions of its own",
           "service.yml: rules[0].remote.name: no remote named 'nowhere' in remotes",
           "service.yml: rules[1].remote.name: is required",
           "service.yml: rules[1].hub.subscriptions[0].topic: 'a/#/b' is not a valid topic",
           "service.yml: rules[1].hub.subscriptions[0].qos: must be at most 1",
           "service.yml: rules[2].remote.subscriptions[0].topic: is required",
           "service.yml: report.interval: must be at least 100ms",
       }) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\nin:\n" << text;
  }
}

TEST(RemoteMqttConfig, TwoClientsWithOneIdOnOneBrokerAreRefused) {
  auto text = issues_of(R"(
hub: {address: tcp://127.0.0.1:1883}
remotes:
  - {name: a, address: tcp://127.0.0.1:1884, clientid: same}
rules:
  - remote: {name: a, subscriptions: [{topic: x}]}
  - remote: {name: a, subscriptions: [{topic: y}]}
)");
  EXPECT_NE(text.find("service.yml: rules[1].hub.clientid: client ID 'same' is also the hub client "
                      "ID of rules[0]"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("service.yml: rules[1].remote.clientid: client ID 'same' is also the client "
                      "ID of rules[0] on tcp://127.0.0.1:1884"),
            std::string::npos)
      << text;
  // The same ID on different brokers is fine, and so are rules with their own IDs.
  EXPECT_EQ(issues_of(R"(
hub: {address: tcp://127.0.0.1:1883}
remotes:
  - {name: a, address: tcp://127.0.0.1:1884, clientid: same}
  - {name: b, address: tcp://127.0.0.1:1885}
rules:
  - remote: {name: a}
  - {hub: {clientid: h2}, remote: {name: a, clientid: r2}}
  - {hub: {clientid: h3}, remote: {name: b, clientid: same}}
)"),
            "");
}

TEST(RemoteMqttConfig, UnknownKeysAreListed) {
  std::vector<std::string> unknown;
  config::load_string<BridgeConfig>(R"(
hub: {address: tcp://127.0.0.1:1883}
remotes: [{name: a, address: tcp://127.0.0.1:1884, qos: 1}]
rules: [{remote: {name: a, topic: t}, forward: true}]
)",
                                    "service.yml", &unknown);
  std::sort(unknown.begin(), unknown.end());
  EXPECT_EQ(unknown, (std::vector<std::string>{"remotes[0].qos", "rules[0].forward",
                                               "rules[0].remote.topic"}));
}

}  // namespace
}  // namespace baetyl::remote
