#include "sys_topics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace baetyl::hub {

namespace {

constexpr double kLoadPeriods[3] = {60, 300, 900};
constexpr const char* kLoadNames[3] = {"1min", "5min", "15min"};

std::uint64_t number(const nlohmann::json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer()) return 0;
  return it->is_number_unsigned() ? it->get<std::uint64_t>()
                                  : static_cast<std::uint64_t>(std::max<std::int64_t>(0, *it));
}

std::string format_load(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", value);
  return text;
}

}  // namespace

SysTopics::SysTopics(std::string version) : version_(std::move(version)) {}

void SysTopics::Load::add(std::uint64_t total, double seconds) {
  if (!started || seconds <= 0) {
    started = true;
    last = total;
    return;
  }
  const double per_minute = static_cast<double>(total - std::min(total, last)) * 60 / seconds;
  last = total;
  for (int i = 0; i < 3; ++i) {
    const double keep = std::exp(-seconds / kLoadPeriods[i]);
    averages[i] = averages[i] * keep + per_minute * (1 - keep);
  }
}

SysValues SysTopics::update(const nlohmann::json& stats, std::chrono::seconds uptime,
                            std::chrono::duration<double> elapsed) {
  const nlohmann::json messages = stats.value("messages", nlohmann::json::object());
  const nlohmann::json store = stats.value("store", nlohmann::json::object());
  const std::uint64_t in = number(messages, "in");
  const std::uint64_t out = number(messages, "out");
  received_.add(in, elapsed.count());
  sent_.add(out, elapsed.count());

  SysValues values = {
      {"$SYS/broker/version", version_},
      {"$SYS/broker/uptime", std::to_string(uptime.count()) + " seconds"},
      {"$SYS/broker/clients/connected", std::to_string(number(stats, "connections"))},
      {"$SYS/broker/clients/total", std::to_string(number(stats, "sessions"))},
      {"$SYS/broker/subscriptions/count", std::to_string(number(stats, "subscriptions"))},
      {"$SYS/broker/retained messages/count", std::to_string(number(stats, "retained"))},
      {"$SYS/broker/messages/received", std::to_string(in)},
      {"$SYS/broker/messages/sent", std::to_string(out)},
      {"$SYS/broker/publish/messages/received", std::to_string(in)},
      {"$SYS/broker/publish/messages/sent", std::to_string(out)},
      {"$SYS/broker/publish/messages/dropped",
       std::to_string(number(messages, "dropped") + number(messages, "dropped_qos1") +
                      number(messages, "dropped_qos2"))},
      {"$SYS/broker/store/backlog", std::to_string(number(store, "backlog"))},
      {"$SYS/broker/store/commits", std::to_string(number(store, "commits"))},
  };
  for (int i = 0; i < 3; ++i) {
    values.emplace_back(std::string("$SYS/broker/load/messages/received/") + kLoadNames[i],
                        format_load(received_.averages[i]));
    values.emplace_back(std::string("$SYS/broker/load/messages/sent/") + kLoadNames[i],
                        format_load(sent_.averages[i]));
  }
  return values;
}

}  // namespace baetyl::hub
