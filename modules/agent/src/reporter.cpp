#include "reporter.h"

#include "baetyl/api/inspect.h"

namespace baetyl::agent {

nlohmann::json make_report(nlohmann::json inspect, const ProgressBook& book) {
  if (!inspect.is_object()) inspect = nlohmann::json::object();
  if (!book.empty()) inspect["ota"] = book.to_json();
  return inspect;
}

Reporter::Reporter(ReportSinks sinks, const ProgressBook& book, std::chrono::milliseconds interval,
                   std::shared_ptr<spdlog::logger> logger)
    : sinks_(std::move(sinks)), book_(book), interval_(interval), logger_(std::move(logger)) {}

Reporter::~Reporter() { stop(); }

void Reporter::start() {
  poked_ = true;
  thread_ = std::thread([this] { run(); });
}

void Reporter::poke() {
  {
    std::lock_guard lock(mutex_);
    poked_ = true;
  }
  wake_.notify_all();
}

void Reporter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Reporter::run() {
  auto next = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_until(lock, next, [&] { return stopping_ || poked_; });
      if (stopping_) return;
      poked_ = false;
    }
    report_once();
    next = std::chrono::steady_clock::now() + interval_;
  }
}

void Reporter::note(std::string& last, const char* channel, const std::string& problem) {
  if (problem.empty()) {
    if (!last.empty()) logger_->info("report over {} works again", channel);
  } else if (problem != last) {
    logger_->warn("report over {} failed (tried again at the next report): {}", channel, problem);
  } else {
    logger_->debug("report over {} failed: {}", channel, problem);
  }
  last = problem;
}

void Reporter::report_once() {
  nlohmann::json inspect;
  try {
    inspect = sinks_.inspect();
    note(last_inspect_problem_, "the master API", "");
  } catch (const std::exception& e) {
    note(last_inspect_problem_, "the master API", e.what());
    inspect = {{"time", api::to_rfc3339(std::chrono::system_clock::now())},
               {"error", std::string("cannot inspect the master: ") + e.what()}};
  }
  const std::string payload = make_report(std::move(inspect), book_)
                                  .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  try {
    const bool queued = sinks_.publish(payload);
    note(last_mqtt_problem_, "MQTT",
         queued ? "" : "earlier reports are not acknowledged yet; this one is skipped");
  } catch (const std::exception& e) {
    note(last_mqtt_problem_, "MQTT", e.what());
  }
  try {
    sinks_.post(payload);
    note(last_https_problem_, "HTTPS", "");
  } catch (const std::exception& e) {
    note(last_https_problem_, "HTTPS", e.what());
  }
}

}  // namespace baetyl::agent
