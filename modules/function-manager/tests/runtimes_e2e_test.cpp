// The real master (native mode) running baetyl-hub, baetyl-function-manager and the Python and
// Node runtimes; a test MQTT client publishes on the hub and reads what the rules publish.
// Covers what the SQL-centred manager_e2e_test does not: call timeouts, message.length.max, the
// Node runtime, sustained load through Python, and a runtime that cannot load its handler.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "baetyl/base64.h"
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

// A published output: the topic and the payload, parsed when it is JSON.
struct Output {
  std::string topic;
  std::string raw;
  nlohmann::json json;  // discarded (is_discarded()) when the payload is not JSON

  bool is_error() const { return json.is_object() && json.contains("errorMessage"); }
  std::string error_message() const {
    return is_error() ? json["errorMessage"].get<std::string>() : "";
  }
  // The input of a function: the output itself, or the functionMessage of an error.
  std::string input_payload() const {
    return is_error() ? base64_decode(json["functionMessage"].value("Payload", "")).value_or("")
                      : raw;
  }
  bool is_probe() const { return input_payload().find("\"probe\"") != std::string::npos; }
};

// A runtime service of the application: its image, its service.yml and its code files.
struct Runtime {
  std::string service;
  std::string image;  // baetyl-function-python or baetyl-function-node
  std::string functions_yaml;  // the runtime's functions: list
  std::map<std::string, std::string> code;  // file name -> content, mounted at code/
};

// The manager's rules read `in/<name>` and publish to `out/<name>`.
struct Rule {
  std::string function;
  std::string extra = "";  // more keys of the rule, e.g. "retry: {max: 0}"
};

class RuntimesE2E : public testing::FunctionAppTest {
 protected:
  void start(const std::vector<Runtime>& runtimes, const std::vector<Rule>& rules,
             const std::string& functions_yaml) {
    hub_port_ = baetyl::testing::free_port();
    write_hub();
    write_manager(rules, functions_yaml);
    for (const auto& runtime : runtimes) write_runtime(runtime);
    write_application(runtimes);
    ASSERT_NO_FATAL_FAILURE(start_master());
    ASSERT_NO_FATAL_FAILURE(connect_observer("runtimes-e2e-observer", {{"out/#", 1}},
                                             [this](const mqtt::Message& m) { record(m); }));
    for (const auto& rule : rules) ASSERT_NO_FATAL_FAILURE(wait_rule_subscribed(rule.function));
  }

  std::filesystem::path root() const { return run_.workdir() / "var/db/baetyl"; }

  void write_hub() {
    write_file(root() / "hub-conf/service.yml", testing::hub_service_yml(hub_port_));
  }

  void write_manager(const std::vector<Rule>& rules, const std::string& functions_yaml) {
    std::string text = testing::manager_hub_yml(hub_port_) + "rules:\n";
    for (const auto& rule : rules) {
      text += "  - clientid: func-" + rule.function + "-1\n" +
              "    subscribe: {topic: in/" + rule.function + ", qos: 1}\n" +
              "    function: {name: " + rule.function + "}\n" +
              "    publish: {topic: out/" + rule.function + ", qos: 1}\n";
      if (!rule.extra.empty()) text += "    " + rule.extra + "\n";
    }
    text += "functions:\n" + functions_yaml +
            "logger: {path: var/log/baetyl/service.log, level: debug}\n";
    write_file(root() / "fm-conf/service.yml", text);
  }

  void write_runtime(const Runtime& runtime) {
    testing::RuntimeService service{runtime.service, runtime.image, true};
    write_file(service.conf_dir(root()) / "service.yml", "functions:\n" + runtime.functions_yaml);
    for (const auto& [file, content] : runtime.code) {
      write_file(service.code_dir(root()) / file, content);
    }
  }

  void write_application(const std::vector<Runtime>& runtimes) {
    std::vector<testing::RuntimeService> services;
    for (const auto& r : runtimes) services.push_back({r.service, r.image, true});
    write_file(root() / "application.yml", testing::application_yml(services));
  }

  void record(const mqtt::Message& m) {
    Output output{m.publish.topic, m.publish.payload,
                  nlohmann::json::parse(m.publish.payload, nullptr, false)};
    std::lock_guard lock(mutex_);
    // Probes of start() can come back late, some as errors; they are not part of any test.
    if (output.is_probe()) {
      ++probes_[output.topic];
      return;
    }
    outputs_.push_back(std::move(output));
  }

  // The rule's client is connected and subscribed once a probe comes back (as a result or as an
  // error: either way the rule ran).
  void wait_rule_subscribed(const std::string& function) {
    auto topic = "out/" + function;
    ASSERT_TRUE(MasterRun::wait_until(
        [&] {
          client_->publish("in/" + function, R"({"probe":true})", 1);
          return MasterRun::wait_until([&] { return probe_count(topic) > 0; }, 1s);
        },
        20s))
        << "no probe came back on " << topic;
  }

  int probe_count(const std::string& topic) {
    std::lock_guard lock(mutex_);
    return probes_[topic];
  }

  std::vector<Output> outputs(const std::string& topic) {
    std::lock_guard lock(mutex_);
    std::vector<Output> result;
    for (const auto& o : outputs_) {
      if (o.topic == topic) result.push_back(o);
    }
    return result;
  }

  std::size_t output_count(const std::string& topic) {
    std::lock_guard lock(mutex_);
    return std::count_if(outputs_.begin(), outputs_.end(),
                         [&](const Output& o) { return o.topic == topic; });
  }

  bool wait_outputs(const std::string& topic, std::size_t n,
                    std::chrono::milliseconds timeout = 20s) {
    return MasterRun::wait_until([&] { return output_count(topic) >= n; }, timeout);
  }

  std::mutex mutex_;
  std::vector<Output> outputs_;
  std::map<std::string, int> probes_;
};

// ---- Call timeout ----

const char* kSleeper =
    "import time\n"
    "def handler(event, context):\n"
    "    time.sleep(event.get('sleep', 0))\n"
    "    return event\n";

TEST_F(RuntimesE2E, CallAboveTimeoutGivesDeadlineErrorAndANewInstance) {
  // A grace longer than the handler's sleep: the replacement must not wait for the master to
  // kill the instance whose call timed out.
  run_.write_conf("20s");
  start({{"function-sleeper", "baetyl-function-python",
          "  - {name: sleeper, handler: sleeper.handler, codedir: code}\n",
          {{"sleeper.py", kSleeper}}}},
        {{"sleeper", "retry: {max: 0}"}},
        "  - {name: sleeper, service: function-sleeper, timeout: 3s,"
        " instance: {min: 0, max: 1}}\n");
  auto before = instances("function-sleeper");
  ASSERT_EQ(before.size(), 1u);
  int pid = before.begin()->second;

  client_->publish("in/sleeper", R"({"id":1,"sleep":8})", 1);
  ASSERT_TRUE(wait_outputs("out/sleeper", 1)) << logs();
  auto error = outputs("out/sleeper")[0];
  ASSERT_TRUE(error.is_error()) << error.raw;
  EXPECT_NE(error.error_message().find("code = DeadlineExceeded"), std::string::npos) << error.raw;
  EXPECT_EQ(error.json["errorType"], "*errors.Err");
  EXPECT_EQ(error.json["functionMessage"]["FunctionName"], "sleeper");
  EXPECT_EQ(error.input_payload(), R"({"id":1,"sleep":8})");

  // The rule goes on with a replacement of the discarded instance.
  for (int id = 2; id <= 4; ++id) {
    client_->publish("in/sleeper", R"({"id":)" + std::to_string(id) + "}", 1);
  }
  ASSERT_TRUE(wait_outputs("out/sleeper", 4)) << logs();
  auto all = outputs("out/sleeper");
  ASSERT_EQ(all.size(), 4u);
  for (int id = 2; id <= 4; ++id) {
    EXPECT_EQ(all[id - 1].json, nlohmann::json({{"id", id}})) << all[id - 1].raw;
  }
  auto after = instances("function-sleeper");
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after.begin()->second, pid) << "the timed-out instance was kept";
}

// ---- message.length.max ----

const char* kEchoPy =
    "def handler(event, context):\n"
    "    return event\n";

TEST_F(RuntimesE2E, MessageAboveLengthMaxGivesErrorAndTheNextOneIsProcessed) {
  start({{"function-echo", "baetyl-function-python",
          "  - {name: echo, handler: echo.handler, codedir: code}\n", {{"echo.py", kEchoPy}}}},
        {{"echo"}},
        "  - {name: echo, service: function-echo, message: {length: {max: 1k}}}\n");
  std::string big = R"({"id":1,"fill":")" + std::string(2000, 'x') + "\"}";
  client_->publish("in/echo", big, 1);
  client_->publish("in/echo", R"({"id":2})", 1);
  ASSERT_TRUE(wait_outputs("out/echo", 2)) << logs();
  auto all = outputs("out/echo");
  ASSERT_EQ(all.size(), 2u);
  ASSERT_TRUE(all[0].is_error()) << all[0].raw;
  EXPECT_NE(all[0].error_message().find("message.length.max"), std::string::npos) << all[0].raw;
  EXPECT_EQ(all[0].input_payload(), big);
  EXPECT_EQ(all[1].json, nlohmann::json({{"id", 2}})) << all[1].raw;
}

// ---- Node through the manager ----

const char* kNodeHandler =
    "exports.handler = (event, context, callback) => {\n"
    "  if (Buffer.isBuffer(event)) {\n"
    "    callback(null, 'bytes:' + event.toString('utf8'));\n"
    "    return;\n"
    "  }\n"
    "  if (event.fail) throw new Error('bad id ' + event.id);\n"
    "  event.function = context.functionName;\n"
    "  event.topic = context.messageTopic;\n"
    "  callback(null, event);\n"
    "};\n";

TEST_F(RuntimesE2E, NodeFunctionWithDictAndBytesEventsAndAThrowingHandler) {
  start({{"function-noder", "baetyl-function-node",
          "  - {name: noder, handler: index.handler, codedir: code}\n",
          {{"index.js", kNodeHandler}}}},
        {{"noder", "retry: {max: 1}"}},
        "  - {name: noder, service: function-noder, timeout: 10s}\n");
  client_->publish("in/noder", R"({"id":1})", 1);
  client_->publish("in/noder", "not json", 1);
  client_->publish("in/noder", R"({"id":3,"fail":true})", 1);
  ASSERT_TRUE(wait_outputs("out/noder", 3)) << logs();
  auto all = outputs("out/noder");
  ASSERT_EQ(all.size(), 3u);  // instance.max 1: in order
  EXPECT_EQ(all[0].json, nlohmann::json::parse(R"({"id":1,"function":"noder","topic":"in/noder"})"))
      << all[0].raw;
  EXPECT_EQ(all[1].raw, "bytes:not json");
  ASSERT_TRUE(all[2].is_error()) << all[2].raw;
  EXPECT_NE(all[2].error_message().find("code = Unknown"), std::string::npos) << all[2].raw;
  EXPECT_NE(all[2].error_message().find("bad id 3"), std::string::npos) << all[2].raw;
  EXPECT_EQ(all[2].json["functionMessage"]["QOS"], 1);
  EXPECT_EQ(all[2].json["functionMessage"]["Topic"], "in/noder");
  EXPECT_EQ(all[2].input_payload(), R"({"id":3,"fail":true})");
}

// ---- Python on a call stream ----

// The Python runtime serves CallStream; when its calls take time (the first one, the start's
// probe, which the runtime timed before the stream opened, did), they spread over instances as
// unary calls do under load, rather than filling the streaming instance up to instance.calls
// as with the SQL runtime: one interpreter runs one at a time.
TEST_F(RuntimesE2E, PythonCallsThatTakeTimeSpreadOverInstances) {
  const char* takes_time =
      "import time\n"
      "def handler(event, context):\n"
      "    time.sleep(event.get('sleep', 0.05))\n"
      "    return event\n";
  start({{"function-sleeper", "baetyl-function-python",
          "  - {name: sleeper, handler: sleeper.handler, codedir: code}\n",
          {{"sleeper.py", takes_time}}}},
        {{"sleeper"}}, "  - {name: sleeper, service: function-sleeper, instance: {max: 2}}\n");
  client_->publish("in/sleeper", R"({"id":0})", 1);
  ASSERT_TRUE(wait_outputs("out/sleeper", 1)) << logs();
  std::this_thread::sleep_for(300ms);  // the instance's stream is open by now
  ASSERT_EQ(instances("function-sleeper").size(), 1u);
  for (int i = 1; i <= 6; ++i) {
    client_->publish("in/sleeper", R"({"id":)" + std::to_string(i) + R"(,"sleep":0.3})", 1);
  }
  EXPECT_TRUE(MasterRun::wait_until([&] { return instances("function-sleeper").size() == 2u; }))
      << "a second instance for the calls waiting on the first";
  ASSERT_TRUE(wait_outputs("out/sleeper", 7)) << logs();
  for (const auto& output : outputs("out/sleeper")) EXPECT_FALSE(output.is_error()) << output.raw;
}

// A function whose calls end fast (the first one, the start's probe, did) is answered in the
// stream's thread, and the runtime says so on the stream: the manager gives that instance the
// calls up to instance.calls instead of starting more, one interpreter at full speed rather than
// several woken for a few calls each.
TEST_F(RuntimesE2E, PythonCallsThatEndFastFillOneInstance) {
  start({{"function-sleeper", "baetyl-function-python",
          "  - {name: sleeper, handler: sleeper.handler, codedir: code}\n",
          {{"sleeper.py", kSleeper}}}},
        {{"sleeper"}}, "  - {name: sleeper, service: function-sleeper, instance: {max: 4}}\n");
  client_->publish("in/sleeper", R"({"id":0})", 1);
  ASSERT_TRUE(wait_outputs("out/sleeper", 1)) << logs();
  std::this_thread::sleep_for(300ms);  // the instance's stream is open by now
  for (int i = 1; i <= 300; ++i) {
    client_->publish("in/sleeper", R"({"id":)" + std::to_string(i) + "}", 1);
  }
  ASSERT_TRUE(wait_outputs("out/sleeper", 301)) << logs();
  for (const auto& output : outputs("out/sleeper")) EXPECT_FALSE(output.is_error()) << output.raw;
  EXPECT_EQ(instances("function-sleeper").size(), 1u);
}

// A function fast at first, then slow (each call sleeps 5 ms), then fast again, called in bursts
// every 20 ms: a few calls in flight at once, far from instance.calls. While its calls end fast
// one instance takes them all; once they take time the runtime says so on its stream and the
// calls spread over instances; once they end fast again, one instance takes them all again (one
// that says so again, or one started for the slow calls whose stream opened after a fast call).
TEST_F(RuntimesE2E, PythonCallsSpreadOnceTheyTurnSlowAndFillOneInstanceWhenFastAgain) {
  const char* paced =
      "import os\n"
      "import time\n"
      "def handler(event, context):\n"
      "    time.sleep(event.get('sleep', 0))\n"
      "    event['pid'] = os.getpid()\n"
      "    return event\n";
  start({{"function-paced", "baetyl-function-python",
          "  - {name: paced, handler: paced.handler, codedir: code}\n", {{"paced.py", paced}}}},
        {{"paced"}}, "  - {name: paced, service: function-paced, instance: {max: 4}}\n");
  std::this_thread::sleep_for(300ms);  // the instance's stream is open by now
  int next_id = 1;
  // The pids of the instances that answered the calls of this phase, in the order of the
  // outputs; bursts of `burst` calls go on until `enough` holds for them or `limit` has passed.
  auto phase = [&](int burst, const std::string& event_tail,
                   const std::function<bool(const std::vector<int>&)>& enough,
                   std::chrono::milliseconds limit) {
    const std::size_t first = output_count("out/paced");
    std::vector<int> pids;
    for (auto deadline = Clock::now() + limit; Clock::now() < deadline;) {
      for (int i = 0; i < burst; ++i) {
        client_->publish("in/paced", R"({"id":)" + std::to_string(next_id++) + event_tail + "}", 1);
      }
      std::this_thread::sleep_for(20ms);
      pids.clear();
      auto all = outputs("out/paced");
      for (std::size_t i = first; i < all.size(); ++i) {
        pids.push_back(all[i].json.is_object() ? all[i].json.value("pid", 0) : 0);
      }
      if (enough(pids)) break;
    }
    return pids;
  };
  auto distinct = [](const std::vector<int>& pids) {
    return std::set<int>(pids.begin(), pids.end()).size();
  };
  // The last 300 outputs all came from one instance.
  auto one_instance_lately = [](const std::vector<int>& pids) {
    return pids.size() >= 300 &&
           std::all_of(pids.end() - 300, pids.end(), [&](int pid) { return pid == pids.back(); });
  };

  const auto never = [](const std::vector<int>&) { return false; };
  // Bursts of 20: calls that do not fill one instance would spread over idle ones.
  auto fast = phase(20, "", never, 1s);
  EXPECT_GE(fast.size(), 500u);
  EXPECT_EQ(distinct(fast), 1u) << "fast calls went to more than one instance";

  auto slow = phase(
      4, R"(,"sleep":0.005)", [&](const auto& pids) { return distinct(pids) > 1; }, 20s);
  EXPECT_GT(distinct(slow), 1u) << "slow calls stayed on one instance";
  EXPECT_NE(logs().find("says its calls take time now"), std::string::npos);

  auto fast_again = phase(20, "", one_instance_lately, 20s);
  EXPECT_TRUE(one_instance_lately(fast_again)) << "fast calls stayed spread over instances";

  ASSERT_TRUE(wait_outputs("out/paced", next_id - 1)) << logs();
  for (const auto& output : outputs("out/paced")) EXPECT_FALSE(output.is_error()) << output.raw;
}

// ---- Sustained load ----

TEST_F(RuntimesE2E, SustainedQos1LoadThroughPythonLosesNothingAndNeverStalls) {
  start({{"function-echo", "baetyl-function-python",
          "  - {name: echo, handler: echo.handler, codedir: code}\n", {{"echo.py", kEchoPy}}}},
        {{"echo"}}, "  - {name: echo, service: function-echo, instance: {min: 0, max: 2}}\n");
  const int rate = 200;
  const int n = rate * 10;
  // The longest time without a new output while inputs are waiting: a wedged pipeline shows up
  // here long before the end.
  std::atomic<bool> publishing{true};
  std::chrono::milliseconds longest_gap{0};
  std::thread watcher([&] {
    auto last_change = Clock::now();
    std::size_t last_count = 0;
    while (publishing || output_count("out/echo") < std::size_t(n)) {
      auto count = output_count("out/echo");
      auto now = Clock::now();
      if (count != last_count) {
        last_count = count;
        last_change = now;
      }
      longest_gap = std::max(
          longest_gap, std::chrono::duration_cast<std::chrono::milliseconds>(now - last_change));
      if (longest_gap > 5s) return;
      std::this_thread::sleep_for(10ms);
    }
  });
  auto begin = Clock::now();
  for (int i = 1; i <= n; ++i) {
    std::this_thread::sleep_until(begin + i * 1000ms / rate);
    client_->publish("in/echo", R"({"id":)" + std::to_string(i) + "}", 1);
  }
  publishing = false;
  bool all = wait_outputs("out/echo", n, 15s);
  watcher.join();
  EXPECT_TRUE(all) << outputs("out/echo").size() << " of " << n;
  EXPECT_LT(longest_gap, 5s) << "no output for " << longest_gap.count() << " ms";
  std::this_thread::sleep_for(300ms);  // duplicates, if any, would come right behind
  std::map<int, int> seen;
  for (const auto& o : outputs("out/echo")) {
    ASSERT_FALSE(o.is_error()) << o.raw;
    seen[o.json.value("id", -1)] += 1;
  }
  for (int i = 1; i <= n; ++i) EXPECT_EQ(seen[i], 1) << "id " << i;
  EXPECT_EQ(seen.size(), std::size_t(n));
}

// ---- A handler that cannot be loaded ----

TEST_F(RuntimesE2E, MissingHandlerModuleIsLoggedAndGivesErrorJson) {
  start({{"function-broken", "baetyl-function-python",
          "  - {name: broken, handler: nosuchmodule.handler, codedir: code}\n",
          {{"other.py", kEchoPy}}}},
        {{"broken", "retry: {max: 0}"}},
        "  - {name: broken, service: function-broken, timeout: 10s}\n");
  client_->publish("in/broken", R"({"id":1})", 1);
  ASSERT_TRUE(wait_outputs("out/broken", 1)) << logs();
  auto error = outputs("out/broken")[0];
  ASSERT_TRUE(error.is_error()) << error.raw;
  EXPECT_NE(error.error_message().find("function-broken.broken.1 could not be started"),
            std::string::npos)
      << error.raw;
  EXPECT_EQ(error.input_payload(), R"({"id":1})");
  // The runtime said why, naming the file and the key.
  auto text = logs();
  EXPECT_NE(text.find("etc/baetyl/service.yml: functions[0].handler: cannot import module "
                      "'nosuchmodule'"),
            std::string::npos)
      << text;
  // The manager saw the runtime end instead of waiting for it until the timeout.
  EXPECT_NE(text.find("instance function-broken.broken.1 ended before it listened"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace baetyl::function
