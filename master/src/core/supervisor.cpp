#include "core/supervisor.h"

#include <algorithm>
#include <cmath>

#include "baetyl/api/inspect.h"

namespace baetyl::master {

namespace {
constexpr std::chrono::milliseconds kHealthyRun{10000};
// What a start failure counts as when deciding on the next restart.
constexpr ExitStatus kStartFailure{127, 0};
}  // namespace

Backoff::Backoff(const BackoffPolicy& policy) : policy_(policy), current_(policy.min) {}

std::chrono::milliseconds Backoff::next() {
  auto wait = std::min(current_, policy_.max);
  double grown = static_cast<double>(current_.count()) * policy_.factor;
  double cap = static_cast<double>(policy_.max.count());
  current_ = std::chrono::milliseconds(static_cast<std::int64_t>(std::min(grown, cap)));
  return wait;
}

void Backoff::reset() { current_ = policy_.min; }

std::chrono::milliseconds Backoff::healthy_after() const {
  return std::max(std::min(kHealthyRun, policy_.max), std::chrono::milliseconds(1));
}

bool should_restart(const RestartPolicy& policy, const ExitStatus& status, int restarts) {
  if (policy.policy == "no") return false;
  if (policy.policy == "on-failure" && status.success()) return false;
  if (policy.retry.max && restarts >= *policy.retry.max) return false;
  return true;
}

std::string_view to_string(InstanceSupervisor::Status status) {
  switch (status) {
    case InstanceSupervisor::Status::kRunning: return "running";
    case InstanceSupervisor::Status::kRestarting: return "restarting";
    case InstanceSupervisor::Status::kExited: return "exited";
  }
  return "unknown";
}

InstanceSupervisor::InstanceSupervisor(Engine& engine, InstanceSpec spec,
                                       std::shared_ptr<spdlog::logger> logger)
    : engine_(engine),
      spec_(std::move(spec)),
      log_(std::move(logger)),
      backoff_(spec_.info.restart.backoff) {}

InstanceSupervisor::~InstanceSupervisor() { stop(std::chrono::milliseconds(0)); }

void InstanceSupervisor::start() {
  std::shared_ptr<Instance> instance;
  try {
    instance = std::shared_ptr<Instance>(engine_.start(spec_));
  } catch (const InstanceUnavailable& e) {
    // Not the service's fault nor the others' business: tried again like a crashed instance.
    log_->error("{}", e.what());
    {
      std::lock_guard lock(mutex_);
      status_ = Status::kRestarting;
      last_error_ = e.what();
    }
    thread_ = std::thread([this] { watch(); });
    return;
  }
  {
    std::lock_guard lock(mutex_);
    instance_ = std::move(instance);
    status_ = Status::kRunning;
    start_time_ = std::chrono::system_clock::now();
    started_at_ = std::chrono::steady_clock::now();
  }
  thread_ = std::thread([this] { watch(); });
}

void InstanceSupervisor::stop(std::chrono::milliseconds grace) {
  std::shared_ptr<Instance> current;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    grace_ = grace;
    current = instance_;
  }
  wake_.notify_all();
  if (current) current->stop(grace);
  std::lock_guard join_lock(join_mutex_);
  if (thread_.joinable()) thread_.join();
}

InstanceSupervisor::Status InstanceSupervisor::status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

int InstanceSupervisor::restarts() const {
  std::lock_guard lock(mutex_);
  return restarts_;
}

void InstanceSupervisor::watch() {
  for (;;) {
    std::shared_ptr<Instance> current;
    {
      std::lock_guard lock(mutex_);
      current = instance_;
    }
    // No instance: the first start found what it runs unavailable.
    const ExitStatus exit = current ? current->wait() : kStartFailure;

    std::unique_lock lock(mutex_);
    if (current) last_exit_ = exit;
    if (stopping_) {
      status_ = Status::kExited;
      return;
    }
    if (std::chrono::steady_clock::now() - started_at_ >= backoff_.healthy_after()) backoff_.reset();
    if (!should_restart(spec_.info.restart, exit, restarts_)) {
      status_ = Status::kExited;
      log_->warn("instance {} of service {} {}; not restarted (restart policy '{}'{})",
                 spec_.instance, spec_.service, exit.describe(), spec_.info.restart.policy,
                 spec_.info.restart.retry.max
                     ? ", retry.max " + std::to_string(*spec_.info.restart.retry.max)
                     : std::string());
      return;
    }
    status_ = Status::kRestarting;
    ExitStatus reason = exit;
    bool started = current != nullptr;
    for (;;) {
      const auto delay = backoff_.next();
      log_->warn("instance {} of service {} {}; restart {} in {} ms", spec_.instance, spec_.service,
                 started ? reason.describe() : std::string("could not start"), restarts_ + 1,
                 delay.count());
      if (wake_.wait_for(lock, delay, [this] { return stopping_; })) {
        status_ = Status::kExited;
        return;
      }
      ++restarts_;
      if (start_instance_locked(lock)) break;
      reason = kStartFailure;
      started = false;
      if (stopping_ || !should_restart(spec_.info.restart, reason, restarts_)) {
        status_ = Status::kExited;
        return;
      }
    }
  }
}

bool InstanceSupervisor::start_instance_locked(std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  std::shared_ptr<Instance> started;
  try {
    started = std::shared_ptr<Instance>(engine_.start(spec_));
  } catch (const std::exception& e) {
    log_->error("failed to restart instance {} of service {}: {}", spec_.instance, spec_.service,
                e.what());
    lock.lock();
    last_error_ = e.what();
    return false;
  }
  lock.lock();
  last_error_.clear();
  instance_ = started;
  status_ = Status::kRunning;
  start_time_ = std::chrono::system_clock::now();
  started_at_ = std::chrono::steady_clock::now();
  if (stopping_) {
    // stop() ran while the engine was starting this one and could not see it.
    auto grace = grace_;
    lock.unlock();
    started->stop(grace);
    lock.lock();
  }
  return true;
}

nlohmann::json InstanceSupervisor::inspect() const {
  std::shared_ptr<Instance> current;
  nlohmann::json entry;
  {
    std::lock_guard lock(mutex_);
    current = instance_;
    entry = reported_;
    entry["name"] = spec_.instance;
    entry["status"] = std::string(to_string(status_));
    entry["start_time"] = api::to_rfc3339(start_time_);
    entry["restart_count"] = restarts_;
    if (status_ != Status::kRunning && last_exit_) entry["last_exit"] = last_exit_->describe();
    if (status_ != Status::kRunning && !last_error_.empty()) entry["error"] = last_error_;
  }
  if (current) {
    nlohmann::json stats = current->stats();
    if (stats.is_object()) {
      for (auto& [key, value] : stats.items()) entry[key] = value;
    }
  }
  return entry;
}

void InstanceSupervisor::report(const nlohmann::json& report) {
  std::lock_guard lock(mutex_);
  for (const auto& [key, value] : report.items()) reported_[key] = value;
}

}  // namespace baetyl::master
