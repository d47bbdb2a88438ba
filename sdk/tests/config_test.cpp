#include "baetyl/config/reader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace std::chrono_literals;
namespace config = baetyl::config;
using config::ByteSize;
using config::ConfigError;

namespace sample {

struct Backoff {
  std::chrono::milliseconds min = 1s;
  std::chrono::milliseconds max = 5min;
  double factor = 2;
};

void describe(config::Reader& r, Backoff& b) {
  r.field("min", b.min).min(1ms);
  r.field("max", b.max);
  r.field("factor", b.factor).min(1.0);
  r.check(b.min <= b.max, "max", "must not be less than min");
}

struct Service {
  std::string name;
  std::string image;
  int replica = 0;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string policy = "always";
  std::optional<int> retry_max;
  Backoff backoff;
};

void describe(config::Reader& r, Service& s) {
  r.field("name", s.name).required().matches("^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$");
  r.field("image", s.image).required().not_empty();
  r.field("replica", s.replica).min(0);
  r.field("args", s.args);
  r.field("env", s.env);
  r.section("restart", [&](config::Reader& restart) {
    restart.field("policy", s.policy).one_of({"no", "always", "on-failure"});
    restart.section("retry", [&](config::Reader& retry) { retry.field("max", s.retry_max); });
    restart.field("backoff", s.backoff);
  });
}

struct App {
  std::string version;
  std::vector<Service> services;
  ByteSize message_max = ByteSize{32 * 1024};
  std::chrono::seconds interval = 1min;
  bool enabled = false;
  std::uint16_t port = 1883;
  nlohmann::json payload = nlohmann::json::object();
};

void describe(config::Reader& r, App& a) {
  r.field("version", a.version);
  r.field("services", a.services);
  r.section("message", [&](config::Reader& m) {
    m.section("length", [&](config::Reader& l) {
      l.field("max", a.message_max).max(ByteSize{268435455});
    });
  });
  r.field("interval", a.interval).min(1s);
  r.field("enabled", a.enabled);
  r.field("port", a.port).min(1);
  r.field("payload", a.payload);
  std::set<std::string> names;
  for (std::size_t i = 0; i < a.services.size(); ++i) {
    const auto& name = a.services[i].name;
    r.check(name.empty() || names.insert(name).second,
            "services[" + std::to_string(i) + "].name", "'" + name + "' is used by another service");
  }
}

}  // namespace sample

namespace {

std::string error_of(const std::string& yaml) {
  try {
    config::load_string<sample::App>(yaml, "app.yml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ConfigReader, EmptyDocumentGivesDefaults) {
  auto app = config::load_string<sample::App>("", "app.yml");
  EXPECT_EQ(app.version, "");
  EXPECT_TRUE(app.services.empty());
  EXPECT_EQ(app.message_max, ByteSize{32 * 1024});
  EXPECT_EQ(app.interval, 1min);
  EXPECT_FALSE(app.enabled);
  EXPECT_EQ(app.port, 1883);
  EXPECT_EQ(app.payload, nlohmann::json::object());
}

TEST(ConfigReader, ReadsNestedStructsListsAndMaps) {
  auto app = config::load_string<sample::App>(R"(
version: v2
interval: 1m30s
enabled: yes
port: 8883
message:
  length:
    max: 4m
services:
  - name: hub
    image: baetyl-hub
    replica: 1
    args: ['-c', 'conf/conf.yml']
    env: {version: v1, LEVEL: debug}
    restart:
      policy: on-failure
      retry: {max: 3}
      backoff: {min: 2s, max: 1m, factor: 1.5}
  - name: timer
    image: baetyl-timer
)");
  EXPECT_EQ(app.version, "v2");
  EXPECT_EQ(app.interval, 90s);
  EXPECT_TRUE(app.enabled);
  EXPECT_EQ(app.port, 8883);
  EXPECT_EQ(app.message_max.bytes, 4u << 20);
  ASSERT_EQ(app.services.size(), 2u);
  const auto& hub = app.services[0];
  EXPECT_EQ(hub.name, "hub");
  EXPECT_EQ(hub.replica, 1);
  EXPECT_EQ(hub.args, (std::vector<std::string>{"-c", "conf/conf.yml"}));
  EXPECT_EQ(hub.env.at("version"), "v1");
  EXPECT_EQ(hub.env.at("LEVEL"), "debug");
  EXPECT_EQ(hub.policy, "on-failure");
  EXPECT_EQ(hub.retry_max, 3);
  EXPECT_EQ(hub.backoff.min, 2s);
  EXPECT_EQ(hub.backoff.max, 1min);
  EXPECT_DOUBLE_EQ(hub.backoff.factor, 1.5);
  const auto& timer = app.services[1];
  EXPECT_EQ(timer.policy, "always");
  EXPECT_FALSE(timer.retry_max.has_value());
  EXPECT_EQ(timer.backoff.min, 1s);
  EXPECT_EQ(timer.backoff.max, 5min);
}

TEST(ConfigReader, FreeFormValuesBecomeJson) {
  auto app = config::load_string<sample::App>(R"(
payload:
  id: 1
  name: sensor
  ratio: 0.5
  on: true
  quoted: "42"
  tags: [a, 2]
  nothing: ~
)");
  EXPECT_EQ(app.payload["id"], 1);
  EXPECT_EQ(app.payload["name"], "sensor");
  EXPECT_DOUBLE_EQ(app.payload["ratio"].get<double>(), 0.5);
  EXPECT_EQ(app.payload["on"], true);
  EXPECT_EQ(app.payload["quoted"], "42");
  EXPECT_EQ(app.payload["tags"], nlohmann::json::parse(R"(["a", 2])"));
  EXPECT_TRUE(app.payload["nothing"].is_null());
}

TEST(ConfigReader, RequiredKeyMissingNamesFileAndPath) {
  auto error = error_of("services:\n  - image: x\n");
  EXPECT_EQ(error, "app.yml: services[0].name: is required");
}

TEST(ConfigReader, DuplicateKeysAreRejected) {
  auto error = error_of("services:\n  - name: a\n    image: x\n    image: y\nversion: 1\nversion: 2\n");
  EXPECT_NE(error.find("app.yml: version: is given more than once"), std::string::npos) << error;
  EXPECT_NE(error.find("app.yml: services[0].image: is given more than once"), std::string::npos)
      << error;
}

TEST(ConfigReader, EmptyRequiredStringIsRejected) {
  auto error = error_of("services:\n  - name: a\n    image: ''\n");
  EXPECT_EQ(error, "app.yml: services[0].image: must not be empty");
}

TEST(ConfigReader, PatternMismatchShowsValueAndPattern) {
  auto error = error_of("services:\n  - name: 'bad name'\n    image: x\n");
  EXPECT_EQ(error,
            "app.yml: services[0].name: 'bad name' does not match ^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$");
}

TEST(ConfigReader, RangeViolationsNameTheLimit) {
  EXPECT_EQ(error_of("services:\n  - {name: a, image: x, replica: -1}\n"),
            "app.yml: services[0].replica: must be at least 0");
  EXPECT_EQ(error_of("message: {length: {max: 1g}}\n"),
            "app.yml: message.length.max: must be at most 268435455b");
  EXPECT_EQ(error_of("interval: 500ms\n"), "app.yml: interval: must be at least 1s");
  EXPECT_EQ(error_of("port: 0\n"), "app.yml: port: must be at least 1");
  EXPECT_EQ(error_of("port: 70000\n"), "app.yml: port: 70000 is out of range [0, 65535]");
}

TEST(ConfigReader, OneOfListsTheChoices) {
  EXPECT_EQ(error_of("services:\n  - {name: a, image: x, restart: {policy: sometimes}}\n"),
            "app.yml: services[0].restart.policy: 'sometimes' is not one of: no, always, on-failure");
}

TEST(ConfigReader, WrongTypesAreReported) {
  EXPECT_EQ(error_of("enabled: maybe\n"), "app.yml: enabled: expected true or false, got 'maybe'");
  EXPECT_EQ(error_of("port: abc\n"), "app.yml: port: expected a non-negative integer, got 'abc'");
  EXPECT_EQ(error_of("port: 1.5\n"), "app.yml: port: expected a non-negative integer, got '1.5'");
  EXPECT_EQ(error_of("services: {name: a}\n"), "app.yml: services: expected a list");
  EXPECT_EQ(error_of("version: [1, 2]\n"), "app.yml: version: expected a string, got a list");
  EXPECT_EQ(error_of("message: 5\n"), "app.yml: message: expected a map of keys, got '5'");
  EXPECT_EQ(error_of("services:\n  - {name: a, image: x, restart: {backoff: {factor: x}}}\n"),
            "app.yml: services[0].restart.backoff.factor: expected a number, got 'x'");
  EXPECT_EQ(error_of("- a\n- b\n"), "app.yml: expected a map of keys, got a list");
}

TEST(ConfigReader, BadUnitsAreReportedWithTheKey) {
  auto error = error_of("interval: 5\n");
  EXPECT_NE(error.find("app.yml: interval: invalid duration '5': missing unit"), std::string::npos)
      << error;
  error = error_of("message: {length: {max: 10x}}\n");
  EXPECT_NE(error.find("app.yml: message.length.max: invalid size '10x'"), std::string::npos)
      << error;
}

TEST(ConfigReader, CrossFieldChecks) {
  EXPECT_EQ(error_of("services:\n  - {name: a, image: x, restart: {backoff: {min: 2m, max: 1m}}}\n"),
            "app.yml: services[0].restart.backoff.max: must not be less than min");
  EXPECT_EQ(error_of("services:\n  - {name: a, image: x}\n  - {name: a, image: y}\n"),
            "app.yml: services[1].name: 'a' is used by another service");
}

TEST(ConfigReader, CollectsEveryIssueAtOnce) {
  try {
    config::load_string<sample::App>(
        "port: 0\nenabled: 3\nservices:\n  - image: x\n  - {name: b, image: y, replica: -2}\n",
        "app.yml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.issues().size(), 4u) << e.what();
    EXPECT_EQ(e.source(), "app.yml");
    std::string all = e.what();
    EXPECT_NE(all.find("app.yml: port: must be at least 1"), std::string::npos);
    EXPECT_NE(all.find("app.yml: enabled: expected true or false"), std::string::npos);
    EXPECT_NE(all.find("app.yml: services[0].name: is required"), std::string::npos);
    EXPECT_NE(all.find("app.yml: services[1].replica: must be at least 0"), std::string::npos);
  }
}

TEST(ConfigReader, UnknownKeysAreListedWithFullPaths) {
  std::vector<std::string> unknown;
  config::load_string<sample::App>(R"(
versoin: v1
payload: {anything: goes}
services:
  - name: a
    image: x
    replicas: 2
    restart: {backof: {min: 1s}}
message: {length: {max: 1k, min: 1}}
)",
                                   "app.yml", &unknown);
  EXPECT_EQ(unknown, (std::vector<std::string>{"message.length.min", "services[0].replicas",
                                               "services[0].restart.backof", "versoin"}));
}

TEST(ConfigReader, NullValueKeepsTheDefault) {
  auto app = config::load_string<sample::App>("interval:\nport: ~\n");
  EXPECT_EQ(app.interval, 1min);
  EXPECT_EQ(app.port, 1883);
}

TEST(ConfigReader, SyntaxErrorNamesLineAndColumn) {
  auto error = error_of("version: v1\nservices:\n  - name: [a\n");
  EXPECT_NE(error.find("app.yml: line "), std::string::npos) << error;
  EXPECT_NE(error.find("YAML syntax error"), std::string::npos) << error;
}

TEST(ConfigReader, MissingFileIsAClearError) {
  try {
    config::load_file<sample::App>("/nonexistent/dir/app.yml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "/nonexistent/dir/app.yml: cannot open file: No such file or directory");
  }
}

TEST(ConfigReader, LoadsFromFile) {
  auto path = std::filesystem::temp_directory_path() / "baetyl_config_test.yml";
  {
    std::ofstream out(path);
    out << "version: from-file\nservices:\n  - {name: s1, image: i1}\n";
  }
  auto app = config::load_file<sample::App>(path.string());
  std::filesystem::remove(path);
  EXPECT_EQ(app.version, "from-file");
  ASSERT_EQ(app.services.size(), 1u);
  EXPECT_EQ(app.services[0].image, "i1");
}

// ---- Schema mode: the keys describe() declares, for the configuration reference ----

namespace {

std::map<std::string, std::pair<std::string, std::string>> by_key(
    const std::vector<config::DeclaredKey>& keys) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  for (const auto& k : keys) out[k.key] = {k.type, k.default_value};
  return out;
}

}  // namespace

TEST(ConfigSchema, ListsEveryDeclaredKeyWithItsTypeAndDefault) {
  auto keys = by_key(config::declared_keys<sample::App>());
  using Entry = std::pair<std::string, std::string>;
  EXPECT_EQ(keys["version"], Entry("string", ""));
  EXPECT_EQ(keys["services"], Entry("list", ""));
  EXPECT_EQ(keys["services[].name"], Entry("string", ""));
  EXPECT_EQ(keys["services[].replica"], Entry("integer", "0"));
  EXPECT_EQ(keys["services[].args"], Entry("list", ""));
  EXPECT_EQ(keys["services[].env"], Entry("map", ""));
  EXPECT_EQ(keys["services[].restart.policy"], Entry("string", "always"));
  EXPECT_EQ(keys["services[].restart.retry.max"], Entry("integer", ""));
  EXPECT_EQ(keys["services[].restart.backoff.min"], Entry("duration", "1s"));
  EXPECT_EQ(keys["services[].restart.backoff.max"], Entry("duration", "5m0s"));
  EXPECT_EQ(keys["services[].restart.backoff.factor"], Entry("number", "2"));
  EXPECT_EQ(keys["message.length.max"], Entry("size", "32k"));
  EXPECT_EQ(keys["interval"], Entry("duration", "1m0s"));
  EXPECT_EQ(keys["enabled"], Entry("boolean", "false"));
  EXPECT_EQ(keys["port"], Entry("integer", "1883"));
  EXPECT_EQ(keys["payload"], Entry("map", "{}"));
  EXPECT_EQ(keys.size(), 17u);
}

TEST(ConfigSchema, KeepsDeclarationOrderAndTakesDefaultsFromTheGivenValue) {
  sample::App defaults;
  defaults.version = "v7";
  defaults.interval = 2min;
  auto keys = config::declared_keys(defaults);
  ASSERT_FALSE(keys.empty());
  EXPECT_EQ(keys.front().key, "version");
  EXPECT_EQ(keys.front().default_value, "v7");
  EXPECT_EQ(keys.back().key, "payload");
  EXPECT_EQ(by_key(keys)["interval"].second, "2m0s");
}

namespace sample {

// A default that breaks its own rule: schema mode must not check it.
struct Strict {
  int level = 0;
};
void describe(config::Reader& r, Strict& s) { r.field("level", s.level).min(5); }

}  // namespace sample

TEST(ConfigSchema, ValueRulesDoNotApply) {
  config::Reader reader = config::Reader::schema();
  sample::Strict strict;
  reader.read(strict);
  EXPECT_TRUE(reader.schema_mode());
  EXPECT_FALSE(reader.has_errors());
  ASSERT_EQ(reader.declared_keys().size(), 1u);
  EXPECT_EQ(reader.declared_keys()[0].key, "level");
  EXPECT_EQ(reader.declared_keys()[0].default_value, "0");
}

TEST(ConfigSchema, RequiredKeysAreListedWithoutDefault) {
  auto keys = by_key(config::declared_keys<sample::Service>());  // name and image are required
  EXPECT_EQ(keys["name"].second, "");
  EXPECT_EQ(keys["image"].second, "");
  EXPECT_EQ(keys["restart.policy"].second, "always");
}
