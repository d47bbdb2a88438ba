// The module Context: configuration (defaults, validation, module keys, unknown keys), the
// environment contract, the stop signal, a hub client against a real mosquitto, the master API
// against the real HTTP test server, and baetyl::run().
#include "baetyl/context.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baetyl/env.h"
#include "baetyl/reporter.h"
#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/temp_dir.h"
#include "support/http_test_server.h"

namespace {

using baetyl::Context;
using baetyl::ContextOptions;
using baetyl::config::ConfigError;
using baetyl::mqtt::TopicInfo;
using baetyl::testing::HttpTestServer;
using baetyl::testing::MosquittoBroker;
using baetyl::testing::MosquittoSubscriber;
using baetyl::testing::SubscriberOptions;
using baetyl::testing::TempDir;
using nlohmann::json;
using namespace std::chrono_literals;
using baetyl::testing::read_text;

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// Sets and unsets environment variables, putting back what was there when destroyed.
class ScopedEnv {
 public:
  ScopedEnv() = default;
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }

  void set(const std::string& name, const std::string& value) {
    save(name);
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  void unset(const std::string& name) {
    save(name);
    ::unsetenv(name.c_str());
  }

 private:
  void save(const std::string& name) {
    if (saved_.count(name)) return;
    const char* value = std::getenv(name.c_str());
    saved_.emplace(name, value ? std::optional<std::string>(value) : std::nullopt);
  }

  std::map<std::string, std::optional<std::string>> saved_;
};

// Every test starts without any BAETYL_* / OPENEDGE_* variable and gets them back afterwards.
class ContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& variable : baetyl::env::kAllVariables) {
      env_.unset(std::string(variable.name));
      env_.unset(std::string(variable.legacy));
    }
  }

  std::string write_config(const std::string& yaml, const std::string& name = "service.yml") {
    return dir_.write(name, yaml).string();
  }
  std::string log_path() const { return (dir_.path() / "log" / "service.log").string(); }
  // A logger section writing to log_path() (and stderr).
  std::string logger_section(const std::string& level = "info") const {
    return "logger:\n  path: " + log_path() + "\n  level: " + level + "\n";
  }

  static ContextOptions options(const std::string& file) {
    return ContextOptions{.config_file = file, .handle_signals = false};
  }

  // The ConfigError `fn` throws; fails the test when it throws nothing or something else.
  template <class Fn>
  static std::optional<ConfigError> config_error(Fn&& fn) {
    try {
      fn();
    } catch (const ConfigError& e) {
      return e;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "expected ConfigError, got: " << e.what();
      return std::nullopt;
    }
    ADD_FAILURE() << "expected ConfigError, nothing was thrown";
    return std::nullopt;
  }

  TempDir dir_;
  ScopedEnv env_;
};

// ---- configuration ----

TEST_F(ContextTest, MissingConfigFileGivesDefaults) {
  const std::string file = (dir_.path() / "etc" / "missing.yml").string();
  Context ctx(options(file));

  EXPECT_EQ(ctx.config_file(), file);
  const baetyl::ServiceConfig& config = ctx.config();
  EXPECT_EQ(config.hub.address, "");
  EXPECT_EQ(config.hub.client_id, "");
  EXPECT_FALSE(config.hub.clean_session);
  EXPECT_EQ(config.hub.timeout, 30s);
  EXPECT_EQ(config.hub.keepalive, 1min);
  EXPECT_EQ(config.hub.buffer_size, 10);
  EXPECT_TRUE(config.hub.subscriptions.empty());
  EXPECT_EQ(config.logger.level, "info");
  EXPECT_EQ(config.logger.format, "text");
  EXPECT_EQ(config.logger.path, "");
  EXPECT_EQ(ctx.log().level(), spdlog::level::info);
  EXPECT_FALSE(std::filesystem::exists(file)) << "a missing file is not created";

  try {
    ctx.new_hub_client();
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "hub.address")) << e.what();
    EXPECT_TRUE(contains(e.what(), file)) << e.what();
  }
  // Overrides do not make up for the missing address.
  EXPECT_THROW(ctx.new_hub_client("id", std::vector<TopicInfo>{{"a", 0}}), std::invalid_argument);
}

TEST_F(ContextTest, EmptyConfigFileGivesDefaults) {
  Context ctx(options(write_config("")));
  EXPECT_EQ(ctx.config().hub.address, "");
  EXPECT_EQ(ctx.config().logger.level, "info");
  EXPECT_THROW(ctx.new_hub_client(), std::invalid_argument);
}

TEST_F(ContextTest, ServiceConfigReadsEveryHubAndLoggerKey) {
  const std::string file = write_config(R"(
hub:
  address: ssl://127.0.0.1:8883
  username: test
  password: hunter2
  clientid: timer-1
  cleansession: true
  timeout: 10s
  interval: 2m
  keepalive: 30s
  buffersize: 32
  validatesubs: true
  subscriptions:
    - topic: cmd/#
      qos: 1
    - topic: status/+
  ca: var/db/baetyl/cert/ca.pem
  cert: var/db/baetyl/cert/client.pem
  key: var/db/baetyl/cert/client.key
  insecureSkipVerify: true
)" + logger_section("debug") + R"(  format: json
  age:
    max: 7
  size:
    max: 5
  backup:
    max: 3
)");
  Context ctx(options(file));

  const auto& hub = ctx.config().hub;
  EXPECT_EQ(hub.address, "ssl://127.0.0.1:8883");
  EXPECT_EQ(hub.username, "test");
  EXPECT_EQ(hub.password, "hunter2");
  EXPECT_EQ(hub.client_id, "timer-1");
  EXPECT_TRUE(hub.clean_session);
  EXPECT_EQ(hub.timeout, 10s);
  EXPECT_EQ(hub.interval, 2min);
  EXPECT_EQ(hub.keepalive, 30s);
  EXPECT_EQ(hub.buffer_size, 32);
  EXPECT_TRUE(hub.validate_subs);
  EXPECT_EQ(hub.subscriptions, (std::vector<TopicInfo>{{"cmd/#", 1}, {"status/+", 0}}));
  EXPECT_EQ(hub.ca, "var/db/baetyl/cert/ca.pem");
  EXPECT_EQ(hub.cert, "var/db/baetyl/cert/client.pem");
  EXPECT_EQ(hub.key, "var/db/baetyl/cert/client.key");
  EXPECT_TRUE(hub.insecure_skip_verify);

  const auto& logger = ctx.config().logger;
  EXPECT_EQ(logger.path, log_path());
  EXPECT_EQ(logger.level, "debug");
  EXPECT_EQ(logger.format, "json");
  EXPECT_EQ(logger.age_max, 7);
  EXPECT_EQ(logger.size_max, 5);
  EXPECT_EQ(logger.backup_max, 3);

  // The logger is the configured one: debug level, JSON lines, into the file.
  EXPECT_EQ(ctx.log().level(), spdlog::level::debug);
  ctx.log().debug("debug line {}", 42);
  ctx.log().flush();
  const std::string log = read_text(log_path());
  ASSERT_TRUE(contains(log, "debug line 42")) << log;
  const std::string last_line = log.substr(log.rfind("{\"time\""));
  const json line = json::parse(last_line);
  EXPECT_EQ(line["level"], "debug");
  EXPECT_EQ(line["msg"], "debug line 42");

  // Without overrides the hub client gets exactly the configured settings.
  const auto client = ctx.new_hub_client();
  EXPECT_EQ(client->config().address, "ssl://127.0.0.1:8883");
  EXPECT_EQ(client->config().client_id, "timer-1");
  EXPECT_EQ(client->config().subscriptions, hub.subscriptions);
  EXPECT_EQ(client->config().keepalive, 30s);
}

struct InvalidCase {
  const char* yaml;
  const char* key;      // the full key path the error names
  const char* message;  // a part of the message
};

class InvalidServiceConfigTest : public ContextTest,
                                 public ::testing::WithParamInterface<InvalidCase> {};

TEST_P(InvalidServiceConfigTest, ThrowsConfigErrorNamingFileAndKey) {
  const InvalidCase& c = GetParam();
  const std::string file = write_config(c.yaml);
  const auto error = config_error([&] { Context ctx(options(file)); });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->source(), file);
  ASSERT_EQ(error->issues().size(), 1u) << error->what();
  EXPECT_EQ(error->issues()[0].key, c.key);
  const std::string what = error->what();
  EXPECT_EQ(what.rfind(file + ": " + c.key + ": ", 0), 0u) << what;
  EXPECT_TRUE(contains(what, c.message)) << what;
}

INSTANTIATE_TEST_SUITE_P(
    Keys, InvalidServiceConfigTest,
    ::testing::Values(
        InvalidCase{"hub:\n  keepalive: 70000s\n", "hub.keepalive", "must be at most"},
        InvalidCase{"hub:\n  keepalive: soon\n", "hub.keepalive", "duration"},
        InvalidCase{"hub:\n  subscriptions:\n    - topic: a/b\n      qos: 2\n",
                    "hub.subscriptions[0].qos", "must be at most 1"},
        InvalidCase{"hub:\n  subscriptions:\n    - topic: ok\n    - topic: a/#/b\n",
                    "hub.subscriptions[1].topic", "is not a valid topic"},
        InvalidCase{"hub:\n  subscriptions:\n    - qos: 1\n", "hub.subscriptions[0].topic",
                    "is required"},
        InvalidCase{"hub:\n  subscriptions: cmd/#\n", "hub.subscriptions", "expected a list"},
        InvalidCase{"hub:\n  address: http://127.0.0.1:1883\n", "hub.address", "tcp://host:port"},
        InvalidCase{"hub:\n  buffersize: 0\n", "hub.buffersize", "must be at least 1"},
        InvalidCase{"hub:\n  buffersize: many\n", "hub.buffersize", "expected an integer"},
        InvalidCase{"hub:\n  cleansession: maybe\n", "hub.cleansession", "true or false"},
        InvalidCase{"hub:\n  insecureSkipVerify: sure\n", "hub.insecureSkipVerify",
                    "true or false"},
        InvalidCase{"hub:\n  interval: 100ms\n", "hub.interval", "must be at least"},
        InvalidCase{"hub:\n  timeout: 0s\n", "hub.timeout", "must be at least"},
        InvalidCase{"hub:\n  cert: client.pem\n", "hub.key", "together"},
        InvalidCase{"hub: [1, 2]\n", "hub", "expected a map"},
        InvalidCase{"logger:\n  level: verbose\n", "logger.level", "'verbose' is not one of"},
        InvalidCase{"logger:\n  format: xml\n", "logger.format", "'xml' is not one of"},
        InvalidCase{"logger:\n  size:\n    max: 0\n", "logger.size.max", "must be at least 1"},
        InvalidCase{"logger:\n  backup:\n    max: -1\n", "logger.backup.max",
                    "must be at least 1"}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST_F(ContextTest, EveryInvalidKeyIsReportedTogether) {
  const std::string file =
      write_config("hub:\n  keepalive: -1s\n  buffersize: 0\nlogger:\n  level: loud\n");
  const auto error = config_error([&] { Context ctx(options(file)); });
  ASSERT_TRUE(error.has_value());
  std::vector<std::string> keys;
  for (const auto& issue : error->issues()) keys.push_back(issue.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"hub.keepalive", "hub.buffersize", "logger.level"}));
  const std::string what = error->what();
  EXPECT_TRUE(contains(what, file + ": hub.buffersize: ")) << what;
  EXPECT_TRUE(contains(what, file + ": logger.level: ")) << what;
}

TEST_F(ContextTest, YamlSyntaxErrorNamesTheFile) {
  const std::string file = write_config("hub:\n  address: [unclosed\n");
  const auto error = config_error([&] { Context ctx(options(file)); });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(std::string(error->what()).rfind(file + ": ", 0), 0u) << error->what();
}

TEST_F(ContextTest, ADocumentThatIsNotAMapIsRejected) {
  const std::string file = write_config("- hub\n- logger\n");
  const auto error = config_error([&] { Context ctx(options(file)); });
  ASSERT_TRUE(error.has_value());
  EXPECT_TRUE(contains(error->what(), file)) << error->what();
  EXPECT_TRUE(contains(error->what(), "expected a map")) << error->what();
}

// ---- load_config<T>() ----

struct Rule {
  std::string topic;
  int qos = 0;
};
void describe(baetyl::config::Reader& r, Rule& c) {
  r.field("topic", c.topic).not_empty();
  r.field("qos", c.qos).min(0).max(1);
}

struct ModuleConfig {
  std::string name = "unnamed";
  int count = 1;
  std::chrono::milliseconds period = 1s;
  std::vector<Rule> rules;
};
void describe(baetyl::config::Reader& r, ModuleConfig& c) {
  r.field("name", c.name).not_empty();
  r.field("count", c.count).min(1).max(100);
  r.field("period", c.period).min(1ms);
  r.field("rules", c.rules);
}

// A second module shape that must name its key.
struct StrictConfig {
  std::string token;
};
void describe(baetyl::config::Reader& r, StrictConfig& c) { r.field("token", c.token).required(); }

TEST_F(ContextTest, LoadConfigReadsModuleKeys) {
  const std::string file = write_config(R"(
hub:
  address: tcp://127.0.0.1:1883
name: ticker
count: 7
period: 1m30s
rules:
  - topic: a/b
    qos: 1
  - topic: c
)" + logger_section());
  Context ctx(options(file));
  const auto config = ctx.load_config<ModuleConfig>();
  EXPECT_EQ(config.name, "ticker");
  EXPECT_EQ(config.count, 7);
  EXPECT_EQ(config.period, 90s);
  ASSERT_EQ(config.rules.size(), 2u);
  EXPECT_EQ(config.rules[0].topic, "a/b");
  EXPECT_EQ(config.rules[0].qos, 1);
  EXPECT_EQ(config.rules[1].topic, "c");
  EXPECT_EQ(config.rules[1].qos, 0);
  EXPECT_EQ(ctx.config().hub.address, "tcp://127.0.0.1:1883");

  EXPECT_FALSE(contains(read_text(log_path()), "unknown key")) << read_text(log_path());
}

TEST_F(ContextTest, LoadConfigKeepsDefaultsForAbsentKeys) {
  Context ctx(options((dir_.path() / "missing.yml").string()));
  const auto config = ctx.load_config<ModuleConfig>();
  EXPECT_EQ(config.name, "unnamed");
  EXPECT_EQ(config.count, 1);
  EXPECT_EQ(config.period, 1s);
  EXPECT_TRUE(config.rules.empty());
}

TEST_F(ContextTest, LoadConfigThrowsConfigErrorNamingFileAndKey) {
  const std::string file = write_config(
      "hub:\n  address: tcp://127.0.0.1:1883\ncount: 1000\nrules:\n  - topic: ''\n    qos: 3\n");
  Context ctx(options(file));  // the service keys are fine
  const auto error = config_error([&] { ctx.load_config<ModuleConfig>(); });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->source(), file);
  std::vector<std::string> keys;
  for (const auto& issue : error->issues()) keys.push_back(issue.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"count", "rules[0].topic", "rules[0].qos"}));
  const std::string what = error->what();
  EXPECT_EQ(what.rfind(file + ": count: must be at most 100", 0), 0u) << what;
  EXPECT_TRUE(contains(what, file + ": rules[0].qos: must be at most 1")) << what;

  // Only the issues of this load are reported: another type loads (or fails) on its own.
  const auto strict = config_error([&] { ctx.load_config<StrictConfig>(); });
  ASSERT_TRUE(strict.has_value());
  ASSERT_EQ(strict->issues().size(), 1u) << strict->what();
  EXPECT_EQ(std::string(strict->what()), file + ": token: is required");
}

TEST_F(ContextTest, LoadConfigWarnsOnceAboutKeysNobodyReads) {
  const std::string file = write_config(R"(
hub:
  address: tcp://127.0.0.1:1883
  adress: typo
name: ticker
extra: 1
rules:
  - topic: a
    colour: red
nested:
  deep: true
)" + logger_section() + "  bogus: x\n");
  Context ctx(options(file));
  EXPECT_FALSE(contains(read_text(log_path()), "unknown key"))
      << "module keys are unknown only once load_config() has read them";

  ctx.load_config<ModuleConfig>();
  const std::string log = read_text(log_path());
  for (const char* key : {"hub.adress", "extra", "rules[0].colour", "nested", "logger.bogus"}) {
    const std::string warning = file + ": unknown key '" + key + "' is ignored";
    EXPECT_EQ(count_of(log, warning), 1u) << warning << " in\n" << log;
  }
  for (const char* key : {"hub", "hub.address", "name", "rules", "rules[0].topic", "logger",
                          "logger.path", "logger.level", "nested.deep"}) {
    EXPECT_FALSE(contains(log, "unknown key '" + std::string(key) + "'")) << key << " in\n" << log;
  }
  EXPECT_TRUE(contains(log, "[warn]")) << log;

  // Loading again does not repeat the warnings.
  ctx.load_config<ModuleConfig>();
  EXPECT_EQ(count_of(read_text(log_path()), "unknown key"), 5u) << read_text(log_path());
}

// ---- environment ----

TEST_F(ContextTest, WithoutEnvironmentNamesAndModeAreEmpty) {
  Context ctx(options(write_config(logger_section())));
  EXPECT_EQ(ctx.service_name(), "");
  EXPECT_EQ(ctx.instance_name(), "");
  EXPECT_EQ(ctx.mode(), "");
  EXPECT_FALSE(ctx.is_native());
  EXPECT_EQ(ctx.log().name(), "baetyl");
}

TEST_F(ContextTest, ServiceAndInstanceNamesComeFromTheEnvironment) {
  env_.set("BAETYL_SERVICE_NAME", "timer");
  env_.set("BAETYL_SERVICE_INSTANCE_NAME", "timer.1");
  Context ctx(options(write_config(logger_section())));
  EXPECT_EQ(ctx.service_name(), "timer");
  EXPECT_EQ(ctx.instance_name(), "timer.1");
  EXPECT_EQ(ctx.log().name(), "timer");

  ctx.log().info("hello");
  const std::string log = read_text(log_path());
  EXPECT_TRUE(contains(log, "hello service=timer instance=timer.1")) << log;
}

TEST_F(ContextTest, InstanceNameDefaultsToTheServiceName) {
  env_.set("BAETYL_SERVICE_NAME", "timer");
  Context ctx(options(write_config(logger_section())));
  EXPECT_EQ(ctx.instance_name(), "timer");
  ctx.log().info("hello");
  const std::string log = read_text(log_path());
  EXPECT_TRUE(contains(log, "hello service=timer")) << log;
  EXPECT_FALSE(contains(log, "instance=")) << log;
}

TEST_F(ContextTest, LegacyOpenedgeNamesAreHonoured) {
  env_.set("OPENEDGE_SERVICE_NAME", "legacy");
  env_.set("OPENEDGE_SERVICE_INSTANCE_NAME", "legacy.2");
  env_.set("OPENEDGE_RUNNING_MODE", "native");
  Context ctx(options(write_config("")));
  EXPECT_EQ(ctx.service_name(), "legacy");
  EXPECT_EQ(ctx.instance_name(), "legacy.2");
  EXPECT_TRUE(ctx.is_native());
}

TEST_F(ContextTest, BaetylNamesWinOverLegacyNames) {
  env_.set("OPENEDGE_SERVICE_NAME", "legacy");
  env_.set("BAETYL_SERVICE_NAME", "current");
  env_.set("OPENEDGE_RUNNING_MODE", "native");
  env_.set("BAETYL_SERVICE_MODE", "docker");
  Context ctx(options(write_config("")));
  EXPECT_EQ(ctx.service_name(), "current");
  EXPECT_EQ(ctx.mode(), "docker");
  EXPECT_FALSE(ctx.is_native());
}

TEST_F(ContextTest, NativeMode) {
  env_.set("BAETYL_SERVICE_MODE", "native");
  Context ctx(options(write_config("")));
  EXPECT_EQ(ctx.mode(), "native");
  EXPECT_TRUE(ctx.is_native());
}

TEST_F(ContextTest, EnvironmentIsRestoredAfterEachTest) {
  // ScopedEnv of the previous tests put everything back; SetUp cleared what was there before.
  for (const auto& variable : baetyl::env::kAllVariables) {
    EXPECT_EQ(std::getenv(std::string(variable.name).c_str()), nullptr) << variable.name;
    EXPECT_EQ(std::getenv(std::string(variable.legacy).c_str()), nullptr) << variable.legacy;
  }
  {
    ScopedEnv scoped;
    scoped.set("BAETYL_SERVICE_NAME", "x");
    scoped.set("BAETYL_SERVICE_NAME", "y");
    EXPECT_STREQ(std::getenv("BAETYL_SERVICE_NAME"), "y");
  }
  EXPECT_EQ(std::getenv("BAETYL_SERVICE_NAME"), nullptr);
}

// ---- stopping ----

TEST_F(ContextTest, WaitForTimesOutWhenNothingHappens) {
  Context ctx(options(write_config("")));
  EXPECT_FALSE(ctx.stop_requested());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(ctx.wait_for(50ms));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 50ms);
  EXPECT_LT(elapsed, 2s);

  EXPECT_FALSE(ctx.wait_until(std::chrono::steady_clock::now() + 20ms));
  EXPECT_FALSE(ctx.wait_until(std::chrono::steady_clock::now() - 1s));
  EXPECT_FALSE(ctx.wait_for(0ms));
  EXPECT_FALSE(ctx.wait_for(-5ms));
  EXPECT_FALSE(ctx.stop_requested());
}

TEST_F(ContextTest, WaitForReturnsPromptlyWhenAnotherThreadStops) {
  Context ctx(options(write_config("")));
  std::thread stopper([&] {
    std::this_thread::sleep_for(50ms);
    ctx.request_stop();
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(ctx.wait_for(30s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  stopper.join();
  EXPECT_GE(elapsed, 40ms);
  EXPECT_LT(elapsed, 5s);
  EXPECT_TRUE(ctx.stop_requested());

  // Once stopped, every wait returns true at once.
  EXPECT_TRUE(ctx.wait_for(0ms));
  EXPECT_TRUE(ctx.wait_for(1h));
  EXPECT_TRUE(ctx.wait_until(std::chrono::steady_clock::now() - 1s));
  ctx.wait();
}

TEST_F(ContextTest, WaitUntilAndWaitWakeUpOnStop) {
  Context ctx(options(write_config("")));
  auto until = std::async(std::launch::async,
                          [&] { return ctx.wait_until(std::chrono::steady_clock::now() + 30s); });
  auto forever = std::async(std::launch::async, [&] { ctx.wait(); });
  EXPECT_EQ(until.wait_for(100ms), std::future_status::timeout);
  EXPECT_EQ(forever.wait_for(0ms), std::future_status::timeout);

  ctx.request_stop();
  ASSERT_EQ(until.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(until.get());
  EXPECT_EQ(forever.wait_for(5s), std::future_status::ready);
}

TEST_F(ContextTest, EndlessTimeoutsWaitForTheStop) {
  Context ctx(options(write_config("")));
  auto longest =
      std::async(std::launch::async, [&] { return ctx.wait_for(std::chrono::nanoseconds::max()); });
  auto latest = std::async(std::launch::async, [&] {
    return ctx.wait_until(std::chrono::steady_clock::time_point::max());
  });
  EXPECT_EQ(longest.wait_for(100ms), std::future_status::timeout)
      << "an endless wait_for() must not return before the stop";
  EXPECT_EQ(latest.wait_for(0ms), std::future_status::timeout);

  ctx.request_stop();
  ASSERT_EQ(longest.wait_for(5s), std::future_status::ready);
  ASSERT_EQ(latest.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(longest.get());
  EXPECT_TRUE(latest.get());
}

TEST_F(ContextTest, OnStopHandlersRunExactlyOnce) {
  Context ctx(options(write_config("")));
  std::atomic<int> first{0};
  std::atomic<int> second{0};
  std::vector<int> order;
  ctx.on_stop([&] {
    ++first;
    order.push_back(1);
  });
  ctx.on_stop([&] {
    ++second;
    order.push_back(2);
  });
  EXPECT_EQ(first, 0);

  std::vector<std::thread> stoppers;
  for (int i = 0; i < 8; ++i) stoppers.emplace_back([&] { ctx.request_stop(); });
  for (auto& stopper : stoppers) stopper.join();
  ctx.request_stop();

  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
  EXPECT_EQ(order, (std::vector<int>{1, 2})) << "handlers run in the order they were added";
}

TEST_F(ContextTest, HandlerAddedAfterTheStopRunsAtOnce) {
  Context ctx(options(write_config("")));
  ctx.request_stop();
  int runs = 0;
  std::thread::id ran_on;
  ctx.on_stop([&] {
    ++runs;
    ran_on = std::this_thread::get_id();
  });
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  ctx.request_stop();
  EXPECT_EQ(runs, 1);
}

TEST_F(ContextTest, HandlersMayStopAndAddHandlersThemselves) {
  Context ctx(options(write_config("")));
  int inner = 0;
  int outer = 0;
  ctx.on_stop([&] {
    ++outer;
    ctx.request_stop();             // already stopping: no recursion
    ctx.on_stop([&] { ++inner; });  // runs at once
  });
  ctx.request_stop();
  EXPECT_EQ(outer, 1);
  EXPECT_EQ(inner, 1);
}

TEST_F(ContextTest, HandlersNeverRunWithoutAStop) {
  int runs = 0;
  {
    Context ctx(options(write_config("")));
    ctx.on_stop([&] { ++runs; });
  }
  EXPECT_EQ(runs, 0);
}

// Tests that start with SIGTERM and SIGINT not blocked in this thread; its signal mask is put back
// after every test.
class StopSignalsUnblockedTest : public ContextTest {
 protected:
  void SetUp() override {
    ContextTest::SetUp();
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, &mask_);
  }
  void TearDown() override { pthread_sigmask(SIG_SETMASK, &mask_, nullptr); }

  sigset_t mask_;
};

// SIGTERM and SIGINT, with handle_signals on, in a child process of their own (a death test), so
// that no thread of the test runner can receive them. The child inherits this thread's mask: it
// starts from "not blocked".
class ContextSignalDeathTest : public StopSignalsUnblockedTest {
 protected:
  void SetUp() override {
    StopSignalsUnblockedTest::SetUp();
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

TEST_F(ContextSignalDeathTest, SigtermRequestsTheStopOnTheSignalThread) {
  const std::string file = write_config(logger_section());
  EXPECT_EXIT(
      {
        int runs = 0;
        std::thread::id ran_on;
        bool stopped = false;
        {
          Context ctx(ContextOptions{.config_file = file, .handle_signals = true});
          ctx.on_stop([&] {
            ++runs;
            ran_on = std::this_thread::get_id();
          });
          ::kill(::getpid(), SIGTERM);
          stopped = ctx.wait_for(10s);
        }  // joins the signal thread
        const bool ok = stopped && runs == 1 && ran_on != std::this_thread::get_id() &&
                        contains(read_text(log_path()), "received Terminated; stopping");
        std::filesystem::remove_all(dir_.path());
        std::_Exit(ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(ContextSignalDeathTest, SecondSignalOnlyLogs) {
  const std::string file = write_config(logger_section());
  EXPECT_EXIT(
      {
        int runs = 0;
        bool stopped = false;
        bool again = false;
        {
          Context ctx(ContextOptions{.config_file = file, .handle_signals = true});
          ctx.on_stop([&] { ++runs; });
          ::kill(::getpid(), SIGINT);
          stopped = ctx.wait_for(10s);
          ::kill(::getpid(), SIGTERM);
          const auto deadline = std::chrono::steady_clock::now() + 10s;
          while (!again && std::chrono::steady_clock::now() < deadline) {
            again = contains(read_text(log_path()), "again; already stopping");
            std::this_thread::sleep_for(10ms);
          }
        }
        std::filesystem::remove_all(dir_.path());
        std::_Exit(stopped && again && runs == 1 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(ContextSignalDeathTest, ContextGivesBackTheSignalMask) {
  const std::string file = write_config("");
  EXPECT_EXIT(
      {
        auto blocked = [](int signal) {
          sigset_t mask;
          pthread_sigmask(SIG_BLOCK, nullptr, &mask);
          return sigismember(&mask, signal) == 1;
        };
        bool blocked_inside = false;
        {
          Context ctx(ContextOptions{.config_file = file, .handle_signals = true});
          blocked_inside = blocked(SIGTERM) && blocked(SIGINT);
        }
        const bool restored = !blocked(SIGTERM) && !blocked(SIGINT);
        std::filesystem::remove_all(dir_.path());
        // With the default action back, SIGTERM ends the process.
        if (blocked_inside && restored) ::raise(SIGTERM);
        std::_Exit(3);
      },
      ::testing::KilledBySignal(SIGTERM), "");
}

// ---- the hub client ----

TEST_F(ContextTest, HubClientAppliesOverridesConnectsAndPublishes) {
  MosquittoBroker broker;
  const std::string file = write_config("hub:\n  address: " + broker.address() +
                                        "\n  clientid: from-config\n  cleansession: true\n"
                                        "  keepalive: 17s\n  subscriptions:\n"
                                        "    - topic: config/topic\n");
  Context ctx(options(file));

  const auto configured = ctx.new_hub_client();
  EXPECT_EQ(configured->config().client_id, "from-config");
  EXPECT_EQ(configured->config().subscriptions, (std::vector<TopicInfo>{{"config/topic", 0}}));

  const auto client = ctx.new_hub_client("override-id", std::vector<TopicInfo>{{"in/#", 1}});
  EXPECT_EQ(client->config().client_id, "override-id");
  EXPECT_EQ(client->config().subscriptions, (std::vector<TopicInfo>{{"in/#", 1}}));
  EXPECT_EQ(client->config().address, broker.address());
  EXPECT_TRUE(client->config().clean_session);
  EXPECT_EQ(client->config().keepalive, 17s);
  EXPECT_FALSE(client->connected()) << "not started";

  // Only an empty override keeps the configured value; an empty list replaces the subscriptions.
  const auto unsubscribed = ctx.new_hub_client("", std::vector<TopicInfo>{});
  EXPECT_EQ(unsubscribed->config().client_id, "from-config");
  EXPECT_TRUE(unsubscribed->config().subscriptions.empty());

  MosquittoSubscriber subscriber(broker.port(), SubscriberOptions{.topic = "out/#", .qos = 1});
  std::mutex mutex;
  std::condition_variable arrived;
  std::vector<std::string> received;
  baetyl::mqtt::ClientCallbacks callbacks;
  callbacks.on_message = [&](const baetyl::mqtt::Message& message) {
    std::lock_guard lock(mutex);
    received.push_back(message.publish.topic + " " + message.publish.payload);
    arrived.notify_all();
  };
  client->start(callbacks);
  ASSERT_TRUE(client->wait_connected(10s)) << broker.log();

  client->publish("out/ctx", "hello from the context", 1);
  EXPECT_EQ(subscriber.wait_for(1, 10s), std::vector<std::string>{"hello from the context"});

  // A subscribe round trip orders after the SUBACK of the configured subscriptions.
  std::promise<std::vector<std::uint8_t>> granted;
  client->subscribe({{"extra/topic", 0}}, [&](baetyl::error_code, std::vector<std::uint8_t> codes) {
    granted.set_value(std::move(codes));
  });
  auto granted_future = granted.get_future();
  ASSERT_EQ(granted_future.wait_for(10s), std::future_status::ready);
  ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "in/a", "for the override", 1), 0);
  ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "config/topic", "not subscribed", 1), 0);
  ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "in/b", "second", 0), 0);
  {
    std::unique_lock lock(mutex);
    arrived.wait_for(lock, 10s, [&] { return received.size() >= 2; });
    EXPECT_EQ(received, (std::vector<std::string>{"in/a for the override", "in/b second"}));
  }

  const std::string log = broker.log();
  EXPECT_TRUE(contains(log, " as override-id (p2, c1, k17")) << log;
  EXPECT_FALSE(contains(log, " as from-config ")) << log;
  client->stop();
}

// ---- the master API ----

TEST_F(ContextTest, MasterApiCallsCarryTheServiceIdentity) {
  HttpTestServer server;
  env_.set("BAETYL_MASTER_API_ADDRESS", "unix://" + server.socket_path());
  env_.set("BAETYL_SERVICE_NAME", "svc");
  env_.set("BAETYL_SERVICE_TOKEN", "tok");
  env_.set("BAETYL_SERVICE_INSTANCE_NAME", "svc.i2");
  Context ctx(options(write_config("")));

  server.respond(200);
  const json stats = {{"stats", {{"msg_count", 3}}}, {"info", {{"company", "baidu"}}}};
  ctx.report_instance(stats);
  ASSERT_EQ(server.request_count(), 1u);
  auto request = server.last_request();
  EXPECT_EQ(request.method, "PUT");
  EXPECT_EQ(request.target, "/v1/services/svc/instances/svc.i2/report");
  EXPECT_EQ(request.header("x-openedge-username"), "svc");
  EXPECT_EQ(request.header("x-openedge-password"), "tok");
  EXPECT_EQ(request.header("content-type"), "application/json");
  EXPECT_EQ(json::parse(request.body), stats);

  server.respond(200, R"({"port":"12345"})");
  EXPECT_EQ(ctx.get_available_port(), "12345");
  request = server.last_request();
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.target, "/v1/ports/available");
  EXPECT_EQ(request.header("x-openedge-username"), "svc");

  server.respond(200);
  ctx.start_instance("svc", "svc.i3", {{"BAETYL_SERVICE_INSTANCE_ADDRESS", "127.0.0.1:1"}});
  EXPECT_EQ(server.last_request().target, "/v1/services/svc/instances/svc.i3/start");
  EXPECT_EQ(json::parse(server.last_request().body),
            json({{"BAETYL_SERVICE_INSTANCE_ADDRESS", "127.0.0.1:1"}}));
  ctx.stop_instance("svc", "svc.i3");
  EXPECT_EQ(server.last_request().target, "/v1/services/svc/instances/svc.i3/stop");
  ctx.update_system(baetyl::api::UpdateRequest{"APP", "var/db/baetyl/app.yml", "t-1"});
  EXPECT_EQ(server.last_request().target, "/v1/system/update");

  server.respond(200, R"({"time":"2019-04-18T16:04:45Z","services":[{"name":"svc"}]})");
  const auto inspect = ctx.inspect_system();
  EXPECT_EQ(inspect.time, "2019-04-18T16:04:45Z");
  ASSERT_EQ(inspect.services.size(), 1u);
  EXPECT_EQ(server.last_request().target, "/v1/system/inspect");

  // The same client is used for every call, made from the environment of the first one.
  EXPECT_EQ(&ctx.master(), &ctx.master());
  EXPECT_EQ(ctx.master().options().address, "unix://" + server.socket_path());
  EXPECT_EQ(server.request_count(), 6u);

  server.respond(401, "account unauthorized");
  EXPECT_THROW(ctx.report_instance(stats), baetyl::api::ApiError);
}

TEST_F(ContextTest, LegacyMasterApiVariableIsHonoured) {
  HttpTestServer server;
  env_.set("OPENEDGE_MASTER_API", server.tcp_address());
  env_.set("OPENEDGE_MASTER_API_VERSION", "v2");
  env_.set("OPENEDGE_SERVICE_NAME", "old");
  env_.set("OPENEDGE_SERVICE_TOKEN", "old-token");
  Context ctx(options(write_config("")));

  server.respond(200, R"({"port":50051})");
  EXPECT_EQ(ctx.get_available_port(), "50051");
  const auto request = server.last_request();
  EXPECT_EQ(request.target, "/v2/ports/available");
  EXPECT_EQ(request.header("x-openedge-username"), "old");
  EXPECT_EQ(request.header("x-openedge-password"), "old-token");

  server.respond(200);
  ctx.report_instance(json::object());
  EXPECT_EQ(server.last_request().target, "/v2/services/old/instances/old/report");
}

TEST_F(ContextTest, BaetylMasterApiAddressWinsOverTheLegacyOne) {
  HttpTestServer server;
  HttpTestServer legacy;
  env_.set("BAETYL_MASTER_API_ADDRESS", server.unix_address());
  env_.set("OPENEDGE_MASTER_API", legacy.unix_address());
  env_.set("BAETYL_SERVICE_NAME", "svc");
  Context ctx(options(write_config("")));
  server.respond(200, R"({"port":"1"})");
  EXPECT_EQ(ctx.get_available_port(), "1");
  EXPECT_EQ(server.request_count(), 1u);
  EXPECT_EQ(legacy.request_count(), 0u);
}

TEST_F(ContextTest, UnreachableMasterThrowsHttpError) {
  env_.set("BAETYL_MASTER_API_ADDRESS", "unix://" + (dir_.path() / "none.sock").string());
  env_.set("BAETYL_SERVICE_NAME", "svc");
  Context ctx(options(write_config("")));
  EXPECT_THROW(ctx.get_available_port(), baetyl::http::HttpError);
}

// ---- baetyl::run() ----

// run() makes a Context with handle_signals on: it blocks SIGTERM and SIGINT in this thread and
// starts a signal thread while it runs. The thread's signal mask is put back after every test.
class RunTest : public StopSignalsUnblockedTest {
 protected:
  int run(std::vector<std::string> args, const std::function<void(Context&)>& body) {
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    return baetyl::run(static_cast<int>(args.size()), argv.data(), body);
  }

  static bool blocked(int signal) {
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    return sigismember(&mask, signal) == 1;
  }
};

TEST_F(RunTest, ReturnsZeroWhenTheBodyReturns) {
  const std::string file =
      write_config("hub:\n  address: tcp://127.0.0.1:1883\n" + logger_section() + "name: x\n");
  bool ran = false;
  const int code = run({"/usr/bin/baetyl-test-module", "-c", file}, [&](Context& ctx) {
    ran = true;
    EXPECT_EQ(ctx.config_file(), file);
    EXPECT_EQ(ctx.config().hub.address, "tcp://127.0.0.1:1883");
    EXPECT_FALSE(ctx.stop_requested());
    EXPECT_EQ(ctx.load_config<ModuleConfig>().name, "x");
  });
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(ran);
  const std::string log = read_text(log_path());
  EXPECT_TRUE(contains(log, std::string("baetyl-test-module ") + baetyl::version() + " starting"))
      << log;
  EXPECT_TRUE(contains(log, "baetyl-test-module stopped")) << log;
}

TEST_F(RunTest, LongConfigOptionAndSignalMaskIsGivenBack) {
  ASSERT_FALSE(blocked(SIGTERM));
  const std::string file = write_config("");
  bool blocked_inside = false;
  std::string seen_file;
  EXPECT_EQ(run({"module", "--config=" + file},
                [&](Context& ctx) {
                  seen_file = ctx.config_file();
                  blocked_inside = blocked(SIGTERM) && blocked(SIGINT);
                }),
            0);
  EXPECT_EQ(seen_file, file);
  EXPECT_TRUE(blocked_inside) << "the body runs with the stop signals blocked";
  EXPECT_FALSE(blocked(SIGTERM)) << "run() must give the signal mask back";
  EXPECT_FALSE(blocked(SIGINT));
}

TEST_F(RunTest, ReturnsOneWhenTheBodyThrows) {
  const std::string file = write_config(logger_section());
  EXPECT_EQ(
      run({"module", "-c", file}, [](Context&) { throw std::runtime_error("the body gave up"); }),
      1);
  EXPECT_TRUE(contains(read_text(log_path()), "[error] the body gave up")) << read_text(log_path());

  EXPECT_EQ(run({"module", "-c", file}, [](Context&) { throw 42; }), 1);
  EXPECT_TRUE(contains(read_text(log_path()), "unknown exception")) << read_text(log_path());
  EXPECT_FALSE(blocked(SIGTERM));
}

TEST_F(RunTest, InvalidConfigFilePrintsOneLineAndReturnsOne) {
  const std::string file = write_config("hub:\n  keepalive: forever\n");
  bool ran = false;
  ::testing::internal::CaptureStderr();
  const int code = run({"./bin/baetyl-timer", "-c", file}, [&](Context&) { ran = true; });
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 1);
  EXPECT_FALSE(ran);
  EXPECT_EQ(err.rfind("baetyl-timer: " + file + ": hub.keepalive: ", 0), 0u) << err;
  EXPECT_EQ(count_of(err, "\n"), 1u) << err;
  EXPECT_FALSE(blocked(SIGTERM)) << "run() must give the signal mask back after a failure too";
}

TEST_F(RunTest, MissingDefaultConfigRunsWithDefaults) {
  // Without -c, etc/baetyl/service.yml relative to the working directory (absent here).
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir_.path());
  std::string seen_file;
  std::string address = "unset";
  const int code = run({"module"}, [&](Context& ctx) {
    seen_file = ctx.config_file();
    address = ctx.config().hub.address;
  });
  std::filesystem::current_path(cwd);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(seen_file, baetyl::kDefaultConfigFile);
  EXPECT_EQ(address, "");
}

TEST_F(RunTest, UnknownArgumentReturnsTwo) {
  bool ran = false;
  ::testing::internal::CaptureStderr();
  ::testing::internal::CaptureStdout();
  const int code = run({"module", "--bogus"}, [&](Context&) { ran = true; });
  const std::string out = ::testing::internal::GetCapturedStdout();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 2);
  EXPECT_FALSE(ran);
  EXPECT_TRUE(contains(err, "module: unknown argument '--bogus'")) << err;
  EXPECT_TRUE(contains(out, "Usage: module [-c FILE]")) << out;

  ::testing::internal::CaptureStderr();
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(run({"module", "-c"}, [&](Context&) { ran = true; }), 2);  // -c without a file
  ::testing::internal::GetCapturedStdout();
  EXPECT_TRUE(contains(::testing::internal::GetCapturedStderr(), "unknown argument '-c'"));
  EXPECT_FALSE(ran);
}

TEST_F(RunTest, VersionAndHelpPrintAndReturnZero) {
  bool ran = false;
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(run({"/opt/baetyl/bin/baetyl-hub", "--version"}, [&](Context&) { ran = true; }), 0);
  std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(out, std::string("baetyl-hub ") + baetyl::version() + " (git " +
                     baetyl::git_revision() + ")\n");
  EXPECT_FALSE(std::string(baetyl::version()).empty());

  ::testing::internal::CaptureStdout();
  EXPECT_EQ(run({"baetyl-hub", "-h"}, [&](Context&) { ran = true; }), 0);
  out = ::testing::internal::GetCapturedStdout();
  EXPECT_TRUE(contains(out, "Usage: baetyl-hub [-c FILE]")) << out;
  EXPECT_TRUE(contains(out, baetyl::kDefaultConfigFile)) << out;
  EXPECT_FALSE(ran);
}

// ---- Reporter ----

TEST_F(ContextTest, ReporterReportsAtOnceThenEveryIntervalUntilDestroyed) {
  baetyl::testing::HttpTestServer master;
  master.respond(200, "");
  env_.set("BAETYL_MASTER_API_ADDRESS", master.unix_address());
  env_.set("BAETYL_SERVICE_NAME", "svc");
  env_.set("BAETYL_SERVICE_TOKEN", "token-1");
  env_.set("BAETYL_SERVICE_INSTANCE_NAME", "svc.2");
  Context ctx(options(write_config("")));
  int reports = 0;
  std::size_t sent = 0;
  {
    baetyl::Reporter reporter(ctx, std::chrono::milliseconds(100), [&] {
      return nlohmann::json{{"n", ++reports}};
    });
    EXPECT_TRUE(reporter.active());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (master.request_count() < 3 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  sent = master.request_count();
  ASSERT_GE(sent, 3u);
  const auto requests = master.requests();
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].target, "/v1/services/svc/instances/svc.2/report");
  EXPECT_EQ(nlohmann::json::parse(requests[0].body), nlohmann::json({{"n", 1}}));
  EXPECT_EQ(nlohmann::json::parse(requests[2].body), nlohmann::json({{"n", 3}}));
  // Destroyed: no report after.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(master.request_count(), sent);
}

TEST_F(ContextTest, ReporterWithoutAMasterDoesNothing) {
  Context ctx(options(write_config("")));
  bool asked = false;
  baetyl::Reporter reporter(ctx, std::chrono::milliseconds(100), [&] {
    asked = true;
    return nlohmann::json::object();
  });
  EXPECT_FALSE(reporter.active());
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_FALSE(asked);
}

}  // namespace
