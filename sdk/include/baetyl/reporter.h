#pragma once
// A module's stats, reported to the master (PUT .../report) at once and then every `interval`
// from a thread of its own, so that a slow master never delays the module's work. Nothing runs
// when no master started the module (no BAETYL_MASTER_API_ADDRESS). A failed report is logged as
// a warning and tried again at the next interval.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "baetyl/context.h"

namespace baetyl {

class Reporter {
 public:
  Reporter(Context& context, std::chrono::milliseconds interval,
           std::function<nlohmann::json()> stats);
  ~Reporter() { stop(); }
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  // No report after it returns (a report under way is finished first).
  void stop();

  // Whether a master is there to report to.
  bool active() const { return thread_.joinable(); }

 private:
  void run();

  Context& context_;
  std::chrono::milliseconds interval_;
  std::function<nlohmann::json()> stats_;
  std::mutex mutex_;
  std::condition_variable stop_changed_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace baetyl
