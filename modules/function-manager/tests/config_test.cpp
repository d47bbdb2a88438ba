#include "config.h"

#include <gtest/gtest.h>

namespace baetyl::function {
namespace {

using namespace std::chrono_literals;

// The function-manager-conf/service.yml of the docs' walkthrough (rules and functions).
const char* kWalkthrough = R"(
rules:
  - clientid: func-python27-sayhi-1
    subscribe:
      topic: t
    function:
      name: python27-sayhi
    publish:
      topic: t/py2hi
  - clientid: func-sql-filter-1
    subscribe:
      topic: t
      qos: 1
    function:
      name: sql-filter
    publish:
      topic: t/sqlfilter
      qos: 1
functions:
  - name: python27-sayhi
    service: function-python27-sayhi
    instance:
      min: 0
      max: 10
  - name: sql-filter
    service: function-sql-filter
)";

std::string error_of(const std::string& yaml) {
  try {
    parse_manager_config(yaml, "service.yml");
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(FunctionManagerConfig, WalkthroughWithDefaults) {
  auto c = parse_manager_config(kWalkthrough);
  ASSERT_EQ(c.rules.size(), 2u);
  ASSERT_EQ(c.functions.size(), 2u);
  EXPECT_EQ(c.rules[0].client_id, "func-python27-sayhi-1");
  EXPECT_EQ(c.rules[0].subscribe.topic, "t");
  EXPECT_EQ(c.rules[0].subscribe.qos, 0);
  EXPECT_EQ(c.rules[0].function, "python27-sayhi");
  EXPECT_EQ(c.rules[0].publish.topic, "t/py2hi");
  EXPECT_EQ(c.rules[0].publish.qos, 0);
  EXPECT_EQ(c.rules[0].retry_max, 3);
  EXPECT_EQ(c.rules[1].subscribe.qos, 1);
  EXPECT_EQ(c.rules[1].publish.qos, 1);
  EXPECT_EQ(c.functions[0].instance.max, 10);
  const auto& sql = c.functions[1];
  EXPECT_EQ(sql.service, "function-sql-filter");
  EXPECT_EQ(sql.instance.min, 0);
  EXPECT_EQ(sql.instance.max, 1);
  EXPECT_EQ(sql.instance.idle_time, 10min);
  EXPECT_EQ(sql.instance.evict_time, 1min);
  EXPECT_EQ(sql.message_length_max.bytes, 4u << 20);
  EXPECT_EQ(sql.backoff_max, 1min);
  EXPECT_EQ(sql.timeout, 30s);
  EXPECT_EQ(c.find_function("sql-filter"), &c.functions[1]);
  EXPECT_EQ(c.find_function("nope"), nullptr);
}

TEST(FunctionManagerConfig, EveryKeyRead) {
  auto c = parse_manager_config(R"(
rules:
  - clientid: r1
    subscribe: {topic: 'a/+', qos: 1}
    function: {name: f}
    publish: {topic: b, qos: 1}
    retry: {max: 7}
functions:
  - name: f
    service: svc
    instance: {min: 2, max: 5, idletime: 30s, evicttime: 5s, calls: 3}
    message: {length: {max: 32k}}
    backoff: {max: 2s}
    timeout: 1500ms
)");
  EXPECT_EQ(c.rules[0].retry_max, 7);
  const auto& f = c.functions[0];
  EXPECT_EQ(f.instance.min, 2);
  EXPECT_EQ(f.instance.max, 5);
  EXPECT_EQ(f.instance.idle_time, 30s);
  EXPECT_EQ(f.instance.evict_time, 5s);
  EXPECT_EQ(f.instance.calls, 3);
  EXPECT_EQ(f.message_length_max.bytes, 32u << 10);
  EXPECT_EQ(f.backoff_max, 2s);
  EXPECT_EQ(f.timeout, 1500ms);
}

TEST(FunctionManagerConfig, RuleNamingMissingFunction) {
  auto e = error_of(R"(
rules:
  - {clientid: r1, subscribe: {topic: t}, function: {name: ghost}, publish: {topic: o}}
functions:
  - {name: f, service: s}
)");
  EXPECT_NE(e.find("rules[0].function.name"), std::string::npos) << e;
  EXPECT_NE(e.find("no function named 'ghost'"), std::string::npos) << e;
}

TEST(FunctionManagerConfig, DuplicateNamesAndClientIds) {
  auto e = error_of(R"(
rules:
  - {clientid: r1, subscribe: {topic: t}, function: {name: f}, publish: {topic: o}}
  - {clientid: r1, subscribe: {topic: u}, function: {name: f}, publish: {topic: p}}
functions:
  - {name: f, service: s}
  - {name: f, service: s2}
)");
  EXPECT_NE(e.find("functions[1].name: duplicate function name 'f'"), std::string::npos) << e;
  EXPECT_NE(e.find("rules[1].clientid: duplicate rule clientid 'r1'"), std::string::npos) << e;
}

TEST(FunctionManagerConfig, MissingRequiredKeys) {
  auto e = error_of(R"(
rules:
  - {subscribe: {qos: 1}, function: {}}
functions:
  - {instance: {max: 2}}
)");
  for (const char* key : {"rules[0].clientid", "rules[0].subscribe.topic", "rules[0].function.name",
                          "rules[0].publish", "functions[0].name", "functions[0].service"}) {
    EXPECT_NE(e.find(std::string(key) + ": is required"), std::string::npos) << key << "\n" << e;
  }
}

TEST(FunctionManagerConfig, BadValues) {
  auto e = error_of(R"(
rules:
  - clientid: 'bad id'
    subscribe: {topic: t, qos: 2}
    function: {name: f}
    publish: {topic: 'o/#', qos: 3}
    retry: {max: -1}
functions:
  - name: f
    service: s
    instance: {min: 3, max: 2, idletime: 0s}
    timeout: 5
)");
  for (const char* key :
       {"rules[0].clientid", "rules[0].subscribe.qos", "rules[0].publish.qos", "rules[0].retry.max",
        "functions[0].instance.min", "functions[0].instance.idletime", "functions[0].timeout"}) {
    EXPECT_NE(e.find(std::string("service.yml: ") + key + ":"), std::string::npos) << key << "\n"
                                                                                   << e;
  }
  EXPECT_NE(error_of(R"(
rules:
  - {clientid: r, subscribe: {topic: t}, function: {name: f}, publish: {topic: 'o/#'}}
functions: [{name: f, service: s}]
)")
                .find("wildcard"),
            std::string::npos);
  EXPECT_NE(error_of("functions: [{name: f, service: s, instance: {max: 101}}]").find("max"),
            std::string::npos);
  EXPECT_NE(error_of("functions: [{name: f, service: s, instance: {max: 0}}]").find("max"),
            std::string::npos);
  EXPECT_NE(error_of("functions: [{name: f, service: s, instance: {calls: 0}}]")
                .find("functions[0].instance.calls"),
            std::string::npos);
}

TEST(FunctionManagerConfig, ReportInterval) {
  EXPECT_EQ(parse_manager_config("").report_interval, 1min);
  EXPECT_EQ(parse_manager_config("report: {interval: 200ms}").report_interval, 200ms);
  EXPECT_NE(error_of("report: {interval: 50ms}").find("service.yml: report.interval:"),
            std::string::npos);
}

}  // namespace
}  // namespace baetyl::function
