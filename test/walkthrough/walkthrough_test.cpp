// example/native as `baetyl start` runs it: master, hub, function manager, and the Python, Node
// and SQL runtimes started on demand. Publishing {"id":1} to `t` comes back on t/topic, t/py2hi,
// t/py3hi, t/node8hi and t/sqlfilter; {"id":20} on all of them but t/sqlfilter. remote-mqtt
// bridges the hub and a second one: t1 reaches the second hub, t2 the first.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"

namespace baetyl::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void replace_in(const fs::path& path, const std::string& from, const std::string& to) {
  std::string text = read(path);
  ASSERT_NE(text.find(from), std::string::npos) << path << " has no " << from;
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  std::ofstream(path, std::ios::trunc) << text;
}

// The topics on which the message with `id` came back.
std::multiset<std::string> topics_of(const std::vector<ReceivedMessage>& received, int id) {
  std::multiset<std::string> topics;
  for (const auto& message : received) {
    auto json = nlohmann::json::parse(message.payload, nullptr, false);
    if (json.is_object() && json.value("id", -1) == id) topics.insert(message.topic);
  }
  return topics;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return condition();
}

TEST(Walkthrough, ExampleConfigurationAnswersOnEveryTopic) {
  TempDir dir;
  fs::copy(fs::path(BAETYL_SOURCE_DIR) / "example/native", dir.path(), fs::copy_options::recursive);
  const std::uint16_t port = free_port();
  const std::string socket = (dir.path() / "var/run/baetyl.sock").string();
  replace_in(dir.path() / "etc/baetyl/conf.yml", "unix:///var/run/baetyl.sock", "unix://" + socket);
  for (const char* conf : {"var/db/baetyl/localhub-conf/service.yml",
                           "var/db/baetyl/function-manager-conf/service.yml",
                           "var/db/baetyl/remote-mqtt-conf/service.yml"}) {
    replace_in(dir.path() / conf, "127.0.0.1:1883", "127.0.0.1:" + std::to_string(port));
  }
  const std::uint16_t remote_port = free_port();
  for (const char* conf :
       {"var/db/baetyl/remotehub-conf/service.yml", "var/db/baetyl/remote-mqtt-conf/service.yml"}) {
    replace_in(dir.path() / conf, "127.0.0.1:1884", "127.0.0.1:" + std::to_string(remote_port));
  }

  ProcessOptions options;
  options.output_file = (dir.path() / "baetyl.out").string();
  Process master({binary_path("baetyl"), "start", "-w", dir.path().string()}, options);
  ASSERT_TRUE(wait_for_port(port, 20s)) << master.output();

  SubscriberOptions subscriber_options;
  subscriber_options.topic = "t/#";
  subscriber_options.qos = 1;
  subscriber_options.username = "test";
  subscriber_options.password = "hahaha";
  MosquittoSubscriber subscriber(port, subscriber_options);
  const std::vector<std::string> auth = {"-u", "test", "-P", "hahaha"};

  // Until every rule of the manager is subscribed, probe with id 0 (answered everywhere).
  const std::multiset<std::string> all = {"t", "t/topic", "t/py2hi", "t/py3hi", "t/node8hi",
                                          "t/sqlfilter"};
  ASSERT_TRUE(wait_until(
      [&] {
        mosquitto_pub(port, "t", R"({"id":0})", 1, auth);
        std::this_thread::sleep_for(300ms);
        auto seen = topics_of(subscriber.received(), 0);
        return std::all_of(all.begin(), all.end(), [&](auto& t) { return seen.count(t) > 0; });
      },
      60s))
      << master.output();

  ASSERT_EQ(mosquitto_pub(port, "t", R"({"id":1})", 1, auth), 0);
  EXPECT_TRUE(wait_until([&] { return topics_of(subscriber.received(), 1) == all; }, 20s))
      << master.output();

  ASSERT_EQ(mosquitto_pub(port, "t", R"({"id":20})", 1, auth), 0);
  std::multiset<std::string> filtered = all;
  filtered.erase("t/sqlfilter");
  EXPECT_TRUE(wait_until([&] { return topics_of(subscriber.received(), 20) == filtered; }, 20s));
  // The SQL answer would come as fast as the others: give it a moment to show it does not.
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(topics_of(subscriber.received(), 20), filtered);

  for (const auto& message : subscriber.received()) {
    auto json = nlohmann::json::parse(message.payload, nullptr, false);
    if (message.topic == "t/sqlfilter" && json.value("id", -1) == 1) {
      EXPECT_EQ(json, nlohmann::json::parse(R"({"id":1,"qos":1,"topic":"t"})"));
    }
    if ((message.topic == "t/py3hi" || message.topic == "t/node8hi") && json.value("id", -1) == 1) {
      EXPECT_EQ(json["Say"], "Hello Baetyl");
      EXPECT_EQ(json["messageTopic"], "t");
      EXPECT_FALSE(json.value("functionInvokeID", "").empty());
    }
  }

  // remote-mqtt bridges the local hub and remotehub: t1 goes up, t2 comes down.
  ASSERT_TRUE(wait_for_port(remote_port, 20s)) << master.output();
  MosquittoSubscriber at_remote(
      remote_port, {.topic = "t1", .qos = 1, .username = "test", .password = "hahaha"});
  EXPECT_TRUE(wait_until(
      [&] {
        mosquitto_pub(port, "t1", "up", 1, auth);
        return !at_remote.wait_for(1, 300ms).empty();
      },
      30s))
      << master.output();
  MosquittoSubscriber at_local(port,
                               {.topic = "t2", .qos = 1, .username = "test", .password = "hahaha"});
  EXPECT_TRUE(wait_until(
      [&] {
        mosquitto_pub(remote_port, "t2", "down", 1, auth);
        return !at_local.wait_for(1, 300ms).empty();
      },
      30s));

  EXPECT_EQ(master.stop(SIGTERM, 30s), 0) << master.output();
  // A quiet stop: the function manager stops its runtimes while its token is still valid, and
  // the master logs each event once.
  const std::string log = read(dir.path() / "var/log/baetyl/baetyl.log");
  EXPECT_EQ(master.output().find("unauthorized"), std::string::npos) << master.output();
  EXPECT_EQ(log.find("unauthorized"), std::string::npos) << log;
  auto count = [&](const std::string& what) {
    std::size_t n = 0;
    for (auto at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("listening on"), 1u) << log;
  EXPECT_EQ(count("instance localhub of service localhub started"), 1u) << log;
  EXPECT_EQ(count("instance function-manager of service function-manager started"), 1u) << log;
}

}  // namespace
}  // namespace baetyl::testing
