#include "timer.h"

#include <mutex>
#include <stdexcept>

#include "baetyl/mqtt/topic.h"
#include "baetyl/reporter.h"

namespace baetyl::timer {

using namespace std::chrono_literals;

void describe(config::Reader& r, TimerConfig& c) {
  r.section("timer", [&](config::Reader& timer) {
    timer.field("interval", c.interval).min(1ms);
  });
  r.section("publish", [&](config::Reader& publish) {
    if (publish.field("topic", c.publish.topic).not_empty().present() &&
        !c.publish.topic.empty()) {
      std::string problem = mqtt::check_topic_name(c.publish.topic);
      publish.check(problem.empty(), "topic", "'" + c.publish.topic + "': " + problem);
    }
    publish.field("qos", c.publish.qos).min(0).max(1);
    publish.field("payload", c.payload)
        .check([](const nlohmann::json& p) { return p.is_object(); },
               "must be a map of keys and values");
  });
  r.section("report", [&](config::Reader& report) {
    report.field("interval", c.report_interval).min(100ms);
  });
}

void TimerStats::published(double unix_seconds, bool ok) {
  if (!ok) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  ticks_.fetch_add(1, std::memory_order_relaxed);
  // Acknowledgements come in order, but keep the latest should two ever cross.
  double last = last_tick_.load(std::memory_order_relaxed);
  while (last < unix_seconds && !last_tick_.compare_exchange_weak(last, unix_seconds)) {
  }
}

nlohmann::json TimerStats::to_json() const {
  nlohmann::json timer = {{"ticks", ticks_.load(std::memory_order_relaxed)},
                          {"publish_failures", failures_.load(std::memory_order_relaxed)}};
  if (const double last = last_tick_.load(std::memory_order_relaxed); last > 0) {
    timer["last_tick"] = last;
  }
  return {{"timer", std::move(timer)}};
}

std::string make_payload(const nlohmann::json& payload, std::int64_t unix_seconds) {
  nlohmann::json message = payload;
  message["time"] = unix_seconds;
  return message.dump();
}

void run_timer(Context& ctx) {
  auto cfg = ctx.load_config<TimerConfig>();
  // Before the client: its publish handlers may run until it is destroyed.
  TimerStats stats;
  auto hub = ctx.new_hub_client();
  std::mutex error_mutex;
  std::string hub_error;
  mqtt::ClientCallbacks callbacks;
  callbacks.on_error = [&](const std::string& error) {
    {
      std::lock_guard lock(error_mutex);
      hub_error = error;
    }
    ctx.request_stop();
  };
  hub->start(callbacks);
  Reporter reporter(ctx, cfg.report_interval, [&] { return stats.to_json(); });
  ctx.log().info("publishing to '{}' at QoS {} every {}{}", cfg.publish.topic, cfg.publish.qos,
                 config::format_duration(cfg.interval),
                 reporter.active() ? ", reporting to the master every " +
                                         config::format_duration(cfg.report_interval)
                                   : "");

  auto next_tick = std::chrono::steady_clock::now() + cfg.interval;
  while (!ctx.wait_until(next_tick)) {
    auto now = std::chrono::system_clock::now();
    mqtt::Publish message;
    message.topic = cfg.publish.topic;
    message.qos = static_cast<std::uint8_t>(cfg.publish.qos);
    message.payload = make_payload(
        cfg.payload, std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
    const double tick = std::chrono::duration<double>(now.time_since_epoch()).count();
    auto done = [&stats, tick](error_code ec) { stats.published(tick, !ec); };
    // While the hub is unreachable and the buffer is full, the tick waits (keeping every message
    // generated) but still notices a stop request.
    while (!hub->try_publish(message, 200ms, done)) {
      if (ctx.stop_requested()) {
        stats.given_up();
        break;
      }
    }
    next_tick += cfg.interval;
    auto now_steady = std::chrono::steady_clock::now();
    if (next_tick < now_steady) next_tick = now_steady + cfg.interval;  // skip missed ticks
  }

  // Give messages still in flight a moment to be acknowledged before disconnecting (no point
  // in waiting while the hub is unreachable).
  bool idle = hub->connected() ? hub->wait_idle(5s) : hub->outstanding() == 0;
  if (!idle) {
    ctx.log().warn("stopping with {} message(s) not yet acknowledged by the hub",
                   hub->outstanding());
  }
  hub->stop();
  std::lock_guard lock(error_mutex);
  if (!hub_error.empty()) throw std::runtime_error("hub client stopped: " + hub_error);
}

}  // namespace baetyl::timer
