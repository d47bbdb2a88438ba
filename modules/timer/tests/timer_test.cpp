// baetyl-timer: its configuration, and the real binary publishing to a real broker.
#include <signal.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <set>
#include <thread>

#include "baetyl/testing/config_error.h"
#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"
#include "timer.h"

using namespace std::chrono_literals;
using baetyl::testing::MosquittoBroker;
using baetyl::testing::MosquittoSubscriber;
using baetyl::testing::Process;
using baetyl::testing::ProcessOptions;
using baetyl::testing::TempDir;
using baetyl::timer::TimerConfig;

namespace {

TimerConfig load(const std::string& yaml) {
  return baetyl::config::load_string<TimerConfig>(yaml, "service.yml");
}

std::string error_of(const std::string& yaml) {
  return baetyl::testing::config_error([&] { load(yaml); });
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The timer binary running in its own service directory with `config` as
// etc/baetyl/service.yml, as the master would start it.
class TimerProcess {
 public:
  explicit TimerProcess(const std::string& config) {
    dir_.write("etc/baetyl/service.yml", config);
    ProcessOptions options;
    options.working_dir = dir_.path().string();
    options.output_file = (dir_.path() / "output.log").string();
    options.env = {{"BAETYL_SERVICE_NAME", "timer"}};
    process_ = std::make_unique<Process>(
        std::vector<std::string>{baetyl::testing::binary_path("baetyl-timer")}, options);
  }
  Process& process() { return *process_; }
  std::string output() const { return process_->output(); }

 private:
  TempDir dir_;
  std::unique_ptr<Process> process_;
};

std::string timer_config(std::uint16_t port, int qos, const std::string& interval = "200ms") {
  return "hub:\n"
         "  address: tcp://127.0.0.1:" + std::to_string(port) + "\n"
         "  clientid: timer-test\n"
         "timer:\n"
         "  interval: " + interval + "\n"
         "publish:\n"
         "  topic: timer/tick\n"
         "  qos: " + std::to_string(qos) + "\n"
         "  payload:\n"
         "    id: 1\n"
         "    name: edge\n";
}

}  // namespace

TEST(TimerConfig, DefaultsFollowTheDocumentation) {
  auto c = load("");
  EXPECT_EQ(c.interval, 1min);
  EXPECT_EQ(c.publish.topic, "timer");
  EXPECT_EQ(c.publish.qos, 0);
  EXPECT_EQ(c.payload, nlohmann::json::object());
  EXPECT_EQ(c.report_interval, 1min);
}

TEST(TimerConfig, ReportIntervalIsReadAndChecked) {
  EXPECT_EQ(load("report:\n  interval: 250ms\n").report_interval, 250ms);
  const std::string error = error_of("report:\n  interval: 10ms\n");
  EXPECT_NE(error.find("service.yml: report.interval:"), std::string::npos) << error;
}

TEST(TimerStats, CountsPublishedAndFailedTicksAndKeepsTheLatest) {
  baetyl::timer::TimerStats stats;
  EXPECT_EQ(stats.to_json(),
            nlohmann::json::parse(R"({"timer":{"ticks":0,"publish_failures":0}})"));
  stats.published(100.5, true);
  stats.published(102.5, true);
  stats.published(101.5, true);  // an older tick answered late: the time stays the latest
  stats.published(103.5, false);
  stats.given_up();
  EXPECT_EQ(
      stats.to_json(),
      nlohmann::json::parse(R"({"timer":{"ticks":3,"publish_failures":2,"last_tick":102.5}})"));
}

TEST(TimerConfig, ReadsTheDocumentedKeys) {
  auto c = load(R"(
hub:
  address: tcp://localhub:1883
  username: test
  password: hahaha
  clientid: timer
timer:
  interval: 1m30s
publish:
  topic: sensors/time
  qos: 1
  payload:
    id: 1
logger:
  path: var/log/baetyl/service.log
  level: debug
)");
  EXPECT_EQ(c.interval, 90s);
  EXPECT_EQ(c.publish.topic, "sensors/time");
  EXPECT_EQ(c.publish.qos, 1);
  EXPECT_EQ(c.payload, nlohmann::json({{"id", 1}}));
}

TEST(TimerConfig, RejectsBadValuesNamingTheKey) {
  EXPECT_EQ(error_of("publish: {qos: 2}\n"), "service.yml: publish.qos: must be at most 1");
  EXPECT_EQ(error_of("publish: {topic: ''}\n"), "service.yml: publish.topic: must not be empty");
  EXPECT_NE(error_of("publish: {topic: 'a/+'}\n").find("service.yml: publish.topic: 'a/+'"),
            std::string::npos);
  EXPECT_EQ(error_of("publish: {payload: [1, 2]}\n"),
            "service.yml: publish.payload: must be a map of keys and values");
  EXPECT_NE(error_of("timer: {interval: 5}\n").find("service.yml: timer.interval: invalid duration"),
            std::string::npos);
  EXPECT_EQ(error_of("timer: {interval: 0s}\n"), "service.yml: timer.interval: must be at least 1ms");
}

TEST(TimerPayload, AddsUnixTimeToThePayload) {
  auto text = baetyl::timer::make_payload({{"id", 1}, {"name", "edge"}}, 1700000000);
  EXPECT_EQ(nlohmann::json::parse(text),
            nlohmann::json({{"id", 1}, {"name", "edge"}, {"time", 1700000000}}));
  EXPECT_EQ(baetyl::timer::make_payload(nlohmann::json::object(), 5), R"({"time":5})");
}

class TimerBinary : public ::testing::TestWithParam<int> {};

TEST_P(TimerBinary, PublishesPayloadAndTimeAtTheConfiguredQos) {
  const int qos = GetParam();
  MosquittoBroker broker;
  MosquittoSubscriber subscriber(broker.port(), {.topic = "timer/#", .qos = 1});
  auto before = unix_now();
  TimerProcess timer(timer_config(broker.port(), qos));

  subscriber.wait_for(3, 10s);
  auto received = subscriber.received();
  ASSERT_GE(received.size(), 3u) << timer.output();
  for (const auto& message : received) {
    EXPECT_EQ(message.topic, "timer/tick");
    EXPECT_EQ(message.qos, qos) << "delivered QoS is min(publish QoS, subscription QoS 1)";
    auto payload = nlohmann::json::parse(message.payload);
    EXPECT_EQ(payload["id"], 1);
    EXPECT_EQ(payload["name"], "edge");
    ASSERT_TRUE(payload["time"].is_number_integer()) << message.payload;
    EXPECT_GE(payload["time"].get<std::int64_t>(), before);
    EXPECT_LE(payload["time"].get<std::int64_t>(), unix_now());
  }

  EXPECT_EQ(timer.process().stop(SIGTERM, 5s), 0) << timer.output();
  EXPECT_NE(timer.output().find("baetyl-timer stopped"), std::string::npos) << timer.output();
}

INSTANTIATE_TEST_SUITE_P(Qos, TimerBinary, ::testing::Values(0, 1),
                         [](const auto& info) { return "Qos" + std::to_string(info.param); });

TEST(TimerBinaryLifecycle, KeepsTicksWhileTheHubIsDownAndDeliversThemAtQos1) {
  MosquittoBroker broker;
  {
    MosquittoSubscriber session(broker.port(), {.topic = "timer/#", .qos = 1,
                                                .client_id = "tick-reader", .clean_session = false});
  }
  TimerProcess timer(timer_config(broker.port(), 1, "100ms"));
  std::this_thread::sleep_for(500ms);
  broker.stop();
  std::this_thread::sleep_for(600ms);  // ticks made now wait in the timer's buffer
  broker.start();
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(timer.process().stop(SIGTERM, 10s), 0) << timer.output();

  MosquittoSubscriber reader(broker.port(), {.topic = "timer/#", .qos = 1,
                                             .client_id = "tick-reader", .clean_session = false});
  auto messages = reader.wait_for(15, 5s);
  std::set<std::int64_t> seconds;
  for (const auto& m : messages) seconds.insert(nlohmann::json::parse(m)["time"].get<std::int64_t>());
  // 2.6 s of 100 ms ticks, with the buffer (10) covering the 0.6 s outage: nothing is missing.
  EXPECT_GE(messages.size(), 15u) << timer.output();
  EXPECT_GE(seconds.size(), 2u);
}

TEST(TimerBinaryLifecycle, ExitsOnSigtermWhileTheHubIsUnreachable) {
  auto port = baetyl::testing::free_port();
  TimerProcess timer(timer_config(port, 1, "50ms"));
  std::this_thread::sleep_for(1s);
  ASSERT_TRUE(timer.process().running()) << timer.output();
  auto begin = std::chrono::steady_clock::now();
  EXPECT_EQ(timer.process().stop(SIGTERM, 10s), 0) << timer.output();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 2s);
  EXPECT_NE(timer.output().find("not yet acknowledged"), std::string::npos) << timer.output();
}

TEST(TimerBinaryLifecycle, InvalidConfigurationExitsWithTheFileAndKey) {
  TimerProcess timer("hub:\n  address: tcp://127.0.0.1:1883\npublish:\n  qos: 3\n");
  auto code = timer.process().wait(5s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_NE(timer.output().find("etc/baetyl/service.yml: publish.qos: must be at most 1"),
            std::string::npos)
      << timer.output();
}

TEST(TimerBinaryLifecycle, MissingHubAddressIsAClearError) {
  TimerProcess timer("timer:\n  interval: 1s\n");
  auto code = timer.process().wait(5s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_NE(timer.output().find("hub.address: is required"), std::string::npos) << timer.output();
}

TEST(TimerBinaryLifecycle, WarnsAboutUnknownKeys) {
  MosquittoBroker broker;
  TimerProcess timer(timer_config(broker.port(), 0) + "publsh:\n  topic: typo\n");
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(timer.process().stop(SIGTERM, 5s), 0);
  EXPECT_NE(timer.output().find("unknown key 'publsh' is ignored"), std::string::npos)
      << timer.output();
}
