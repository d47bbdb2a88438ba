#include "baetyl/reporter.h"

#include "baetyl/env.h"

namespace baetyl {

Reporter::Reporter(Context& context, std::chrono::milliseconds interval,
                   std::function<nlohmann::json()> stats)
    : context_(context), interval_(interval), stats_(std::move(stats)) {
  if (env::get(env::kMasterApiAddress).has_value()) thread_ = std::thread([this] { run(); });
}

void Reporter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Reporter::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    try {
      context_.report_instance(stats_());
    } catch (const std::exception& e) {
      context_.log().warn("report to the master failed: {}", e.what());
    }
    lock.lock();
    stop_changed_.wait_for(lock, interval_, [&] { return stopping_; });
  }
}

}  // namespace baetyl
