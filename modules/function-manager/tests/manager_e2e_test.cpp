// The real master (native mode) running baetyl-hub, baetyl-function-manager and the
// baetyl-function-sql runtime; a test MQTT client publishes on the hub and reads the results.
#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "baetyl/mqtt/client.h"
#include "baetyl/testing/ports.h"
#include "function_app.h"
#include "master_run.h"

namespace baetyl::function {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using baetyl::testing::MasterRun;

using testing::write_file;

struct Received {
  std::mutex mutex;
  std::vector<nlohmann::json> messages;
  std::size_t size() {
    std::lock_guard lock(mutex);
    return messages.size();
  }
};

// The runtime service of the sql-filter function.
constexpr const char* kSqlService = "function-sql-filter";

class FunctionManagerE2E : public testing::FunctionAppTest {
 protected:
  // `instance` is the YAML map of the sql-filter function's instance key. `extra_rules` and
  // `extra_functions` are appended to the manager's rules and functions, `extra_runtimes` to the
  // application's services.
  void start(const std::string& instance, const std::string& sql,
             const std::string& extra_rules = "", const std::string& extra_functions = "",
             const std::vector<testing::RuntimeService>& extra_runtimes = {}) {
    hub_port_ = baetyl::testing::free_port();
    auto root = run_.workdir() / "var/db/baetyl";
    write_file(root / "hub-conf/service.yml",
               testing::hub_service_yml(hub_port_, hub_pub_deny_, hub_extra_));
    write_file(root / "fm-conf/service.yml",
               testing::manager_hub_yml(hub_port_, manager_hub_extra_) +
                   "rules:\n"
                   "  - clientid: func-sql-filter-1\n"
                   "    subscribe: {topic: t, qos: 1}\n"
                   "    function: {name: sql-filter}\n"
                   "    publish: {topic: t/sqlfilter, qos: 1}\n" +
                   extra_rules +
                   "functions:\n"
                   "  - name: sql-filter\n"
                   "    service: function-sql-filter\n"
                   "    timeout: 5s\n"
                   "    instance: " +
                   instance + "\n" + extra_functions +
                   "logger: {path: var/log/baetyl/service.log, level: debug}\n");
    testing::RuntimeService sql_runtime{kSqlService, "baetyl-function-sql"};
    write_file(sql_runtime.conf_dir(root) / "service.yml",
               "functions:\n  - name: sql-filter\n    handler: '" + sql + "'\n");
    std::vector<testing::RuntimeService> runtimes{sql_runtime};
    runtimes.insert(runtimes.end(), extra_runtimes.begin(), extra_runtimes.end());
    write_file(root / "application.yml", testing::application_yml(runtimes));
    ASSERT_NO_FATAL_FAILURE(start_master());
    ASSERT_NO_FATAL_FAILURE(connect_observer("e2e-observer", {{"t/sqlfilter", 1}, {"py/hi", 1}},
                                             [this](const mqtt::Message& m) { record(m); }));
    ASSERT_TRUE(rule_answers("t", "t/sqlfilter")) << logs();
  }

  void record(const mqtt::Message& m) {
    std::lock_guard lock(received_.mutex);
    auto payload = nlohmann::json::parse(m.publish.payload);
    // Probes of start() can come back late; they are not part of any test.
    if (payload.value("probe", false)) {
      probes_[m.publish.topic] += 1;
      return;
    }
    if (m.publish.topic != "t/sqlfilter") payload["_topic"] = m.publish.topic;
    received_.messages.push_back(std::move(payload));
  }

  // A rule's client is connected and subscribed once a probe published on its input topic
  // comes back on its output topic.
  bool rule_answers(const std::string& input, const std::string& output) {
    auto answered = [&] {
      std::lock_guard lock(received_.mutex);
      return probes_[output] > 0;
    };
    return MasterRun::wait_until(
        [&] {
          client_->publish(input, R"({"id":0,"probe":true})", 1);
          return MasterRun::wait_until(answered, 300ms);
        },
        15s);
  }

  std::set<int> ids() {
    std::lock_guard lock(received_.mutex);
    std::set<int> result;
    for (const auto& m : received_.messages) result.insert(m.value("id", -1));
    return result;
  }

  // Set before start(): the hub's pub deny list, more hub keys, more keys of the manager's hub:.
  std::string hub_pub_deny_;
  std::string hub_extra_;
  std::string manager_hub_extra_;
  Received received_;
  std::map<std::string, int> probes_;  // by output topic, under received_.mutex
};

const char* kFilter = "select qos() as qos, topic() as topic, * where id < 10";

TEST_F(FunctionManagerE2E, WalkthroughSqlFilter) {
  start("{min: 0, max: 1}", kFilter);
  client_->publish("t", R"({"id":1})", 1);
  client_->publish("t", R"({"id":20})", 1);
  client_->publish("t", R"({"id":2})", 1);
  ASSERT_TRUE(MasterRun::wait_until([&] { return received_.size() >= 2; })) << logs();
  std::lock_guard lock(received_.mutex);
  ASSERT_EQ(received_.messages.size(), 2u);
  EXPECT_EQ(received_.messages[0], nlohmann::json::parse(R"({"id":1,"qos":1,"topic":"t"})"));
  EXPECT_EQ(received_.messages[1], nlohmann::json::parse(R"({"id":2,"qos":1,"topic":"t"})"));
  // Only one instance, named <service>.<function>.<id>.
  auto running = instances(kSqlService);
  EXPECT_EQ(running.size(), 1u);
  EXPECT_EQ(running.count("function-sql-filter.sql-filter.1"), 1u);
}

TEST_F(FunctionManagerE2E, ScalesUpUnderLoadAndEvictsToMin) {
  // A few calls per instance: the default (100) lets one SQL instance take the whole window.
  start("{min: 0, max: 3, idletime: 1s, evicttime: 100ms, calls: 4}", kFilter);
  std::atomic<bool> done{false};
  std::atomic<std::size_t> most{0};
  std::thread watcher([&] {
    while (!done) {
      most = std::max(most.load(), instances(kSqlService).size());
      std::this_thread::sleep_for(20ms);
    }
  });
  const int n = 600;
  for (int i = 1; i <= n; ++i) client_->publish("t", R"({"id":)" + std::to_string(i % 10) + "}", 1);
  bool all = MasterRun::wait_until([&] { return received_.size() >= std::size_t(n); }, 20s);
  done = true;
  watcher.join();
  EXPECT_TRUE(all) << received_.size();
  EXPECT_EQ(most.load(), 3u);
  auto start_evict = Clock::now();
  EXPECT_TRUE(MasterRun::wait_until([&] { return instances(kSqlService).empty(); }, 10s));
  EXPECT_GE(Clock::now() - start_evict, 500ms);
}

TEST_F(FunctionManagerE2E, KilledInstanceIsReplacedWithoutLosingQos1Input) {
  start("{min: 0, max: 1}", "select * where id >= 0");
  const int n = 400;
  std::thread publisher([&] {
    for (int i = 1; i <= n; ++i) {
      client_->publish("t", R"({"id":)" + std::to_string(i) + "}", 1);
      if (i % 50 == 0) std::this_thread::sleep_for(20ms);
    }
  });
  ASSERT_TRUE(MasterRun::wait_until([&] { return received_.size() >= 50; })) << logs();
  auto before = instances(kSqlService);
  ASSERT_EQ(before.size(), 1u);
  int pid = before.begin()->second;
  ASSERT_GT(pid, 0);
  ::kill(pid, SIGKILL);
  publisher.join();
  EXPECT_TRUE(MasterRun::wait_until([&] { return ids().size() >= std::size_t(n); }, 20s))
      << ids().size();
  auto got = ids();
  for (int i = 1; i <= n; ++i) EXPECT_TRUE(got.count(i)) << "lost id " << i;
  auto after = instances(kSqlService);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after.begin()->second, pid);
}

TEST_F(FunctionManagerE2E, PythonHandlerThatRaisesGivesErrorJson) {
  auto root = run_.workdir() / "var/db/baetyl";
  testing::RuntimeService python{"function-raiser", "baetyl-function-python", true};
  write_file(python.code_dir(root) / "raiser.py",
             "def handler(event, context):\n"
             "    if event.get('fail'):\n"
             "        raise ValueError('bad id ' + str(event['id']))\n"
             "    event['function'] = context['functionName']\n"
             "    return event\n");
  write_file(python.conf_dir(root) / "service.yml",
             "functions:\n  - {name: raiser, handler: raiser.handler, codedir: code}\n");
  start("{min: 0, max: 1}", kFilter,
        "  - clientid: func-raiser-1\n"
        "    subscribe: {topic: py, qos: 1}\n"
        "    function: {name: raiser}\n"
        "    publish: {topic: py/hi, qos: 1}\n"
        "    retry: {max: 1}\n",
        "  - {name: raiser, service: function-raiser, timeout: 10s}\n", {python});
  ASSERT_TRUE(rule_answers("py", "py/hi")) << logs();
  client_->publish("py", R"({"id":7,"fail":true})", 1);
  client_->publish("py", R"({"id":8})", 1);
  ASSERT_TRUE(MasterRun::wait_until([&] { return received_.size() >= 2; }, 20s)) << logs();
  std::lock_guard lock(received_.mutex);
  const auto& error = received_.messages[0];
  ASSERT_TRUE(error.contains("errorMessage")) << error.dump();
  EXPECT_NE(error["errorMessage"].get<std::string>().find("bad id 7"), std::string::npos)
      << error.dump();
  EXPECT_EQ(error["errorType"], "*errors.Err");
  const auto& input = error["functionMessage"];
  EXPECT_EQ(input["Topic"], "py");
  EXPECT_EQ(input["QOS"], 1);
  EXPECT_EQ(input["FunctionName"], "raiser");
  EXPECT_EQ(input["Payload"], "eyJpZCI6NywiZmFpbCI6dHJ1ZX0=");  // base64 of the input
  EXPECT_EQ(input["FunctionInvokeID"].get<std::string>().size(), 36u);
  EXPECT_EQ(received_.messages[1],
            nlohmann::json::parse(R"({"id":8,"function":"raiser","_topic":"py/hi"})"));
}

// How many times `needle` occurs in `text`.
std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TEST_F(FunctionManagerE2E, AnOutputTheHubRefusesOverMqtt5IsLoggedAndItsInputAcknowledged) {
  hub_pub_deny_ = "['refused/#']";
  // Unacknowledged inputs would come back every second.
  hub_extra_ = "message:\n  egress:\n    qos1:\n      retry:\n        interval: 1s\n";
  manager_hub_extra_ = "  protocol: 5\n";
  start("{min: 0, max: 1}", kFilter,
        "  - clientid: func-refused-1\n"
        "    subscribe: {topic: rf, qos: 1}\n"
        "    function: {name: sql-filter}\n"
        "    publish: {topic: refused/out, qos: 1}\n");
  // The client's warning for each PUBACK 0x87, and the rule's error for each input it gives up.
  const std::string pubacked = "the broker refused the message on topic refused/out";
  const std::string given_up = "rule func-refused-1: the output of the message on rf was refused";
  // Once the rule is subscribed, an input's output is refused.
  ASSERT_TRUE(MasterRun::wait_until(
      [&] {
        client_->publish("rf", R"({"id":1})", 1);
        return MasterRun::wait_until([&] { return count_of(logs(), pubacked) > 0; }, 500ms);
      },
      15s))
      << logs();
  std::this_thread::sleep_for(1s);  // inputs of the probes still on their way
  const auto refused = count_of(logs(), pubacked);
  // Acknowledged: the hub does not send the inputs again, so no output is refused again.
  std::this_thread::sleep_for(3500ms);
  EXPECT_EQ(count_of(logs(), pubacked), refused) << logs();
  EXPECT_EQ(count_of(logs(), given_up), refused) << logs();
  EXPECT_NE(logs().find("refused (Not authorized (0x87))"), std::string::npos) << logs();
  // The rule goes on with the next inputs.
  client_->publish("t", R"({"id":5})", 1);
  EXPECT_TRUE(MasterRun::wait_until([&] { return ids().count(5) > 0; }, 10s)) << logs();
}

}  // namespace
}  // namespace baetyl::function
