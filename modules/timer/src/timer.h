#pragma once
// baetyl-timer: publishes its payload plus "time": <unix seconds> to the hub every interval.
#include <atomic>
#include <chrono>
#include <cstdint>
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
  // report.interval: how often the stats go to the master (when a master started the timer).
  std::chrono::milliseconds report_interval = std::chrono::minutes(1);
};

// Keys: timer.interval, publish.topic, publish.qos, publish.payload, report.interval.
void describe(config::Reader& r, TimerConfig& c);

// What the timer reports to the master: {"timer": {"ticks", "publish_failures", "last_tick"}}.
class TimerStats {
 public:
  // The hub client's answer for the message of the tick made at `unix_seconds`: acknowledged
  // (QoS 1) or written (QoS 0), else an error.
  void published(double unix_seconds, bool ok);
  // A tick whose message was never handed to the hub client (given up at a stop).
  void given_up() { failures_.fetch_add(1, std::memory_order_relaxed); }
  nlohmann::json to_json() const;

 private:
  std::atomic<std::uint64_t> ticks_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::atomic<double> last_tick_{0};  // 0: none yet
};

// The message for one tick: the configured payload with "time" set to `unix_seconds`.
std::string make_payload(const nlohmann::json& payload, std::int64_t unix_seconds);

// Publishes on every tick until the context is asked to stop.
void run_timer(Context& ctx);

}  // namespace baetyl::timer
