// The function manager's stats on the master's Prometheus endpoint: the real master (native
// mode, metrics.address set) running baetyl-hub, baetyl-function-manager and two
// baetyl-function-sql runtimes; a test MQTT client calls the functions through the hub.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <mutex>

#include <nlohmann/json.hpp>

#include "baetyl/mqtt/client.h"
#include "baetyl/testing/ports.h"
#include "function_app.h"
#include "master_run.h"

namespace baetyl::function {
namespace {

using namespace std::chrono_literals;
using baetyl::testing::MasterRun;
using baetyl::testing::sample_value;
using baetyl::testing::scrape_metrics;
using testing::write_file;

// Two rules, each through a function of its own: `pass` returns its input, `fail` gets inputs
// that are not JSON, which the SQL runtime refuses (INVALID_ARGUMENT), and is not retried.
class FunctionStatsE2E : public testing::FunctionAppTest {
 protected:
  void SetUp() override {
    hub_port_ = baetyl::testing::free_port();
    metrics_port_ = baetyl::testing::free_port();
    auto root = run_.workdir() / "var/db/baetyl";
    write_file(root / "hub-conf/service.yml",
               testing::hub_service_yml(hub_port_) + "report:\n  interval: 200ms\n");
    write_file(root / "fm-conf/service.yml",
               testing::manager_hub_yml(hub_port_) +
                   "rules:\n"
                   "  - clientid: rule-pass\n"
                   "    subscribe: {topic: calls, qos: 1}\n"
                   "    function: {name: pass}\n"
                   "    publish: {topic: calls/out, qos: 1}\n"
                   "  - clientid: rule-fail\n"
                   "    subscribe: {topic: fails, qos: 1}\n"
                   "    function: {name: fail}\n"
                   "    publish: {topic: fails/out, qos: 1}\n"
                   "    retry: {max: 0}\n"
                   "functions:\n"
                   "  - {name: pass, service: function-sql-pass, timeout: 5s}\n"
                   "  - {name: fail, service: function-sql-fail, timeout: 5s}\n"
                   "report:\n  interval: 200ms\n"
                   "logger: {path: var/log/baetyl/service.log, level: debug}\n");
    std::vector<testing::RuntimeService> runtimes = {{"function-sql-pass", "baetyl-function-sql"},
                                                     {"function-sql-fail", "baetyl-function-sql"}};
    write_file(runtimes[0].conf_dir(root) / "service.yml",
               "functions:\n  - {name: pass, handler: 'select *'}\n");
    write_file(runtimes[1].conf_dir(root) / "service.yml",
               "functions:\n  - {name: fail, handler: 'select *'}\n");
    write_file(root / "application.yml", testing::application_yml(runtimes));
    run_.write_conf("2s",
                    "metrics:\n  address: tcp://127.0.0.1:" + std::to_string(metrics_port_) + "\n");
    ASSERT_NO_FATAL_FAILURE(start_master());
    ASSERT_NO_FATAL_FAILURE(connect_observer("stats-observer", {{"calls/out", 1}, {"fails/out", 1}},
                                             [this](const mqtt::Message& m) {
                                               std::lock_guard lock(mutex_);
                                               ++received_[m.publish.topic];
                                             }));
    // Both rules and the observer subscribed (as the hub reports it): from now on no message
    // published on their topics is lost, and none was called before.
    ASSERT_TRUE(MasterRun::wait_until(
        [&] {
          const auto hub = run_.instance("localhub", "localhub");
          return hub.is_object() && hub.value("subscriptions", 0) >= 4;
        },
        15s))
        << logs();
  }

  std::size_t received(const std::string& topic) {
    std::lock_guard lock(mutex_);
    return received_[topic];
  }
  // `name` of function `function` as the endpoint writes it, with `extra` labels after.
  static std::string series(const std::string& name, const std::string& function,
                            const std::string& extra = "") {
    return name + "{service=\"function-manager\",instance=\"function-manager\",function=\"" +
           function + "\"" + extra + "}";
  }

  std::uint16_t metrics_port_ = 0;
  std::mutex mutex_;
  std::map<std::string, std::size_t> received_;
};

TEST_F(FunctionStatsE2E, CallsErrorsAndLatencyPerFunctionReachTheEndpoint) {
  constexpr int kCalls = 25;
  constexpr int kFailures = 3;
  for (int i = 0; i < kCalls; ++i) {
    client_->publish("calls", R"({"id":)" + std::to_string(i) + "}", 1);
  }
  for (int i = 0; i < kFailures; ++i) client_->publish("fails", "not json", 1);
  // Every input gave its output (the failures their error message).
  ASSERT_TRUE(MasterRun::wait_until(
      [&] { return received("calls/out") == kCalls && received("fails/out") == kFailures; }, 20s))
      << received("calls/out") << " " << received("fails/out");

  // The manager's next report carries them all.
  const std::string calls = series("baetyl_function_calls_total", "pass");
  std::string text;
  ASSERT_TRUE(MasterRun::wait_until(
      [&] {
        text = scrape_metrics(metrics_port_);
        return sample_value(text, calls) == kCalls &&
               sample_value(text, series("baetyl_function_calls_total", "fail")) == kFailures;
      },
      10s))
      << text;
  EXPECT_THAT(text, ::testing::HasSubstr("# TYPE baetyl_function_calls_total counter\n"));
  EXPECT_THAT(text,
              ::testing::HasSubstr("# TYPE baetyl_function_call_duration_seconds histogram\n"));
  EXPECT_EQ(sample_value(text, series("baetyl_function_errors_total", "pass")), 0);
  EXPECT_EQ(sample_value(text, series("baetyl_function_errors_total", "fail")), kFailures);
  EXPECT_EQ(sample_value(text, series("baetyl_function_in_flight", "pass")), 0);
  EXPECT_EQ(sample_value(text, series("baetyl_function_in_flight", "fail")), 0);

  // The latency histogram of `pass`: N observations, cumulative buckets, a positive sum below
  // N times the longest possible call.
  const std::string histogram = "baetyl_function_call_duration_seconds";
  EXPECT_EQ(sample_value(text, series(histogram + "_count", "pass")), kCalls);
  EXPECT_EQ(sample_value(text, series(histogram + "_bucket", "pass", ",le=\"+Inf\"")), kCalls);
  EXPECT_EQ(sample_value(text, series(histogram + "_count", "fail")), kFailures);
  const auto sum = sample_value(text, series(histogram + "_sum", "pass"));
  ASSERT_TRUE(sum.has_value()) << text;
  EXPECT_GT(*sum, 0);
  EXPECT_LT(*sum, kCalls * 5.0);  // the function's timeout
  double previous = 0;
  for (const char* le : {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                         "0.25", "0.5", "1", "2.5", "5", "10"}) {
    const auto bucket = sample_value(
        text, series(histogram + "_bucket", "pass", ",le=\"" + std::string(le) + "\""));
    ASSERT_TRUE(bucket.has_value()) << le << "\n" << text;
    EXPECT_GE(*bucket, previous) << le;
    previous = *bucket;
  }
  EXPECT_LE(previous, kCalls);

  // More calls move the counter on by as many.
  for (int i = 0; i < 5; ++i) client_->publish("calls", R"({"id":1})", 1);
  EXPECT_TRUE(MasterRun::wait_until(
      [&] { return sample_value(scrape_metrics(metrics_port_), calls) == kCalls + 5; }, 15s))
      << scrape_metrics(metrics_port_);
}

}  // namespace
}  // namespace baetyl::function
