#pragma once
// The docs' function walkthrough as the walkthrough tests check it, in native mode
// (walkthrough_test.cpp) and through containers (docker_walkthrough_test.cpp): a copy of an
// example work directory, edited to run beside other tests, and the messages published to `t`
// with the answers each must get.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baetyl/testing/mosquitto.h"

namespace baetyl::testing::walkthrough {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Replaces every `from` in the file by `to`; a file without `from` fails the test.
inline void replace_in(const fs::path& path, const std::string& from, const std::string& to) {
  std::string text = read(path);
  ASSERT_NE(text.find(from), std::string::npos) << path << " has no " << from;
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  std::ofstream(path, std::ios::trunc) << text;
}

// The topics on which the message with `id` came back.
inline std::multiset<std::string> topics_of(const std::vector<ReceivedMessage>& received, int id) {
  std::multiset<std::string> topics;
  for (const auto& message : received) {
    auto json = nlohmann::json::parse(message.payload, nullptr, false);
    if (json.is_object() && json.value("id", -1) == id) topics.insert(message.topic);
  }
  return topics;
}

inline bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return condition();
}

// The example's hub account.
inline const std::vector<std::string> kAuth = {"-u", "test", "-P", "hahaha"};

// A subscriber on t/# (QoS 1) with the example's account.
inline SubscriberOptions subscriber_options(const std::string& topic = "t/#") {
  SubscriberOptions options;
  options.topic = topic;
  options.qos = 1;
  options.username = "test";
  options.password = "hahaha";
  return options;
}

// The walkthrough on the hub at 127.0.0.1:`port`, with `subscriber` on t/#: until every rule of
// the function manager answers, probes with {"id":0}; then {"id":1} comes back on t, t/topic,
// t/py2hi, t/py3hi, t/node8hi and t/sqlfilter, and {"id":20} on all of them but t/sqlfilter.
// `context` is shown with a failure (the master's output, say).
inline void check_walkthrough(std::uint16_t port, const MosquittoSubscriber& subscriber,
                              const std::function<std::string()>& context,
                              std::chrono::milliseconds ready_timeout = 60s) {
  const std::multiset<std::string> all = {"t",       "t/topic",   "t/py2hi",
                                          "t/py3hi", "t/node8hi", "t/sqlfilter"};
  ASSERT_TRUE(wait_until(
      [&] {
        mosquitto_pub(port, "t", R"({"id":0})", 1, kAuth);
        std::this_thread::sleep_for(300ms);
        auto seen = topics_of(subscriber.received(), 0);
        return std::all_of(all.begin(), all.end(), [&](auto& t) { return seen.count(t) > 0; });
      },
      ready_timeout))
      << context();

  ASSERT_EQ(mosquitto_pub(port, "t", R"({"id":1})", 1, kAuth), 0);
  EXPECT_TRUE(wait_until([&] { return topics_of(subscriber.received(), 1) == all; }, 20s))
      << context();

  ASSERT_EQ(mosquitto_pub(port, "t", R"({"id":20})", 1, kAuth), 0);
  std::multiset<std::string> filtered = all;
  filtered.erase("t/sqlfilter");
  EXPECT_TRUE(wait_until([&] { return topics_of(subscriber.received(), 20) == filtered; }, 20s))
      << context();
  // The SQL answer would come as fast as the others: give it a moment to show it does not.
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(topics_of(subscriber.received(), 20), filtered);

  for (const auto& message : subscriber.received()) {
    auto json = nlohmann::json::parse(message.payload, nullptr, false);
    if (!json.is_object()) continue;
    if (message.topic == "t/sqlfilter" && json.value("id", -1) == 1) {
      EXPECT_EQ(json, nlohmann::json::parse(R"({"id":1,"qos":1,"topic":"t"})"));
    }
    if ((message.topic == "t/py3hi" || message.topic == "t/node8hi") && json.value("id", -1) == 1) {
      EXPECT_EQ(json["Say"], "Hello Baetyl");
      EXPECT_EQ(json["messageTopic"], "t");
      EXPECT_FALSE(json.value("functionInvokeID", "").empty());
    }
  }
}

// How often `what` occurs in `text`.
inline std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace baetyl::testing::walkthrough
