#pragma once
// baetyl-timer: publishes its payload plus "time": <unix seconds> to the hub every interval.
#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "baetyl/config/reader.h"
#include "baetyl/context.h"
#include "baetyl/mqtt/client_config.h"

namespace baetyl::timer {

struct TimerConfig {
  std::chrono::milliseconds interval = std::chrono::minutes(1);
  mqtt::TopicInfo publish{"timer", 0};
  nlohmann::json payload = nlohmann::json::object();
};

// Keys: timer.interval, publish.topic, publish.qos, publish.payload.
void describe(config::Reader& r, TimerConfig& c);

// The message for one tick: the configured payload with "time" set to `unix_seconds`.
std::string make_payload(const nlohmann::json& payload, std::int64_t unix_seconds);

// Publishes on every tick until the context is asked to stop.
void run_timer(Context& ctx);

}  // namespace baetyl::timer
