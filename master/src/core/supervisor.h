#pragma once
// Keeps one instance of a service running according to the service's restart policy: `always`,
// `on-failure` or `no`, at most `retry.max` restarts, waiting backoff.min, then factor times longer
// each time up to backoff.max. The wait goes back to backoff.min once an instance has run healthy
// for min(10 s, backoff.max).
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>

#include "engine/engine.h"

namespace baetyl::master {

// The waits between restarts. Pure, so the arithmetic is tested on its own.
class Backoff {
 public:
  explicit Backoff(const BackoffPolicy& policy);
  // The wait before the next restart; each call grows the following one by the factor.
  std::chrono::milliseconds next();
  void reset();
  // How long an instance must run to count as healthy and reset the backoff.
  std::chrono::milliseconds healthy_after() const;

 private:
  BackoffPolicy policy_;
  std::chrono::milliseconds current_;
};

// Whether an instance that exited with `status` is started again under `policy` after `restarts`
// restarts so far.
bool should_restart(const RestartPolicy& policy, const ExitStatus& status, int restarts);

class InstanceSupervisor {
 public:
  enum class Status { kRunning, kRestarting, kExited };

  InstanceSupervisor(Engine& engine, InstanceSpec spec, std::shared_ptr<spdlog::logger> logger);
  ~InstanceSupervisor();  // stops with no grace if still running
  InstanceSupervisor(const InstanceSupervisor&) = delete;
  InstanceSupervisor& operator=(const InstanceSupervisor&) = delete;

  // Starts the instance and the thread that watches it. Throws what the engine throws when the
  // first start fails (nothing is left running then), except InstanceUnavailable: that start is
  // reported (log, inspect `error`) and tried again by the restart policy, as after a crash.
  void start();
  // No more restarts; stops the instance (SIGTERM, `grace`, SIGKILL) and joins the thread.
  void stop(std::chrono::milliseconds grace);

  const std::string& name() const { return spec_.instance; }
  const InstanceSpec& spec() const { return spec_; }
  Status status() const;
  int restarts() const;
  // The instance's inspect entry: name, status, start_time, the engine's stats (process or
  // container, cpu_stats, mem_stats) and every key it reported; when it is not running,
  // last_exit and, after a failed start, error (why it could not start).
  nlohmann::json inspect() const;
  // Merges `report` (a JSON object) into the reported keys, replacing keys reported before.
  void report(const nlohmann::json& report);

 private:
  void watch();
  bool start_instance_locked(std::unique_lock<std::mutex>& lock);

  Engine& engine_;
  InstanceSpec spec_;
  std::shared_ptr<spdlog::logger> log_;
  Backoff backoff_;

  mutable std::mutex mutex_;
  std::mutex join_mutex_;
  std::condition_variable wake_;
  std::shared_ptr<Instance> instance_;
  Status status_ = Status::kRunning;
  std::optional<ExitStatus> last_exit_;
  std::string last_error_;  // why the last start failed; empty once one succeeded
  std::chrono::system_clock::time_point start_time_{};
  std::chrono::steady_clock::time_point started_at_{};
  int restarts_ = 0;
  bool stopping_ = false;
  std::chrono::milliseconds grace_{0};
  nlohmann::json reported_ = nlohmann::json::object();
  std::thread thread_;
};

std::string_view to_string(InstanceSupervisor::Status status);

}  // namespace baetyl::master
