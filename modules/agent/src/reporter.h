#pragma once
// Reports the node's status to the cloud every interval, and at once when poked (an update made
// progress, the link came up): the master's inspect document plus "ota" (ProgressBook),
// published on the report topic and POSTed to the report URL. A failure is logged and the next
// report tries again; nothing here waits for the OTA worker, nor it for a report.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <spdlog/logger.h>
#include <nlohmann/json.hpp>

#include "progress.h"

namespace baetyl::agent {

struct ReportSinks {
  std::function<nlohmann::json()> inspect;  // the master's inspect document; throws on failure
  // Queues the report on the MQTT link; false when it could not be queued (the link's buffer is
  // full). Throws on other failures.
  std::function<bool(const std::string& payload)> publish;
  std::function<void(const std::string& payload)> post;  // HTTPS; throws on failure
};

// The report: `inspect` with "ota" set to the book's records (when it has any).
nlohmann::json make_report(nlohmann::json inspect, const ProgressBook& book);

class Reporter {
 public:
  Reporter(ReportSinks sinks, const ProgressBook& book, std::chrono::milliseconds interval,
           std::shared_ptr<spdlog::logger> logger);
  ~Reporter();
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  void start();  // reports at once, then every interval
  void poke();   // reports again as soon as the current report (if any) is done
  void stop();

 private:
  void run();
  void report_once();
  // Logs a failure of `channel` when it differs from the last one (then at debug level).
  void note(std::string& last, const char* channel, const std::string& problem);

  ReportSinks sinks_;
  const ProgressBook& book_;
  std::chrono::milliseconds interval_;
  std::shared_ptr<spdlog::logger> logger_;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool poked_ = false;
  std::thread thread_;
  std::string last_inspect_problem_, last_mqtt_problem_, last_https_problem_;
};

}  // namespace baetyl::agent
