// The values of the hub's $SYS topics, from its stats.
#include "sys_topics.h"

#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace baetyl::hub {
namespace {

using namespace std::chrono_literals;

std::map<std::string, std::string> as_map(const SysValues& values) {
  return {values.begin(), values.end()};
}

nlohmann::json stats(std::uint64_t in, std::uint64_t out) {
  return {{"connections", 2},
          {"sessions", 3},
          {"subscriptions", 4},
          {"retained", 5},
          {"messages", {{"in", in}, {"out", out}, {"dropped", 1}, {"dropped_qos1", 2}, {"dropped_qos2", 4}}},
          {"store", {{"backlog", 6}, {"commits", 7}}}};
}

TEST(SysTopics, MosquittoNamesForTheHubsCounters) {
  SysTopics sys("baetyl-hub 1.0");
  auto values = as_map(sys.update(stats(10, 20), 42s, 0s));
  EXPECT_EQ(values["$SYS/broker/version"], "baetyl-hub 1.0");
  EXPECT_EQ(values["$SYS/broker/uptime"], "42 seconds");
  EXPECT_EQ(values["$SYS/broker/clients/connected"], "2");
  EXPECT_EQ(values["$SYS/broker/clients/total"], "3");
  EXPECT_EQ(values["$SYS/broker/subscriptions/count"], "4");
  EXPECT_EQ(values["$SYS/broker/retained messages/count"], "5");
  EXPECT_EQ(values["$SYS/broker/messages/received"], "10");
  EXPECT_EQ(values["$SYS/broker/messages/sent"], "20");
  EXPECT_EQ(values["$SYS/broker/publish/messages/dropped"], "7");
  EXPECT_EQ(values["$SYS/broker/store/backlog"], "6");
  EXPECT_EQ(values["$SYS/broker/store/commits"], "7");
  EXPECT_EQ(values["$SYS/broker/load/messages/received/1min"], "0.00");
}

TEST(SysTopics, LoadIsAnExponentialAverageOfMessagesPerMinute) {
  SysTopics sys("v");
  sys.update(stats(0, 0), 0s, 0s);
  // 60 messages in 60 s: 60 per minute, weighted by 1 - e^-1 over one minute.
  auto values = as_map(sys.update(stats(60, 0), 60s, 60s));
  EXPECT_EQ(values["$SYS/broker/load/messages/received/1min"], "37.93");
  EXPECT_EQ(values["$SYS/broker/load/messages/received/5min"], "10.88");
  EXPECT_EQ(values["$SYS/broker/load/messages/sent/1min"], "0.00");
}

}  // namespace
}  // namespace baetyl::hub
