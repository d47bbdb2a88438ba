#pragma once
// One process started by the native engine (see Instance for the contract).
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <spdlog/logger.h>

#include "engine/engine.h"
#include "engine/instance_registry.h"
#include "engine/output_capture.h"
#include "stats/host_stats.h"

namespace baetyl::master {

// Exactly one thread at a time waits for the process (on a pidfd, or by polling waitid(WNOWAIT)
// on kernels without pidfds) without holding the mutex; the process is reaped, and its group
// killed, only under the mutex, so a kill(-pgid) sent under the mutex can never reach a reused
// pid. Whoever else needs the exit (wait or stop, from any thread) waits on the condition
// variable, or takes over the waiting when the current waiter gives up at its deadline.
class NativeInstance final : public Instance {
 public:
  // `pid` must be a child of this process that leads its own process group.
  // `output`: the capture of its stdout and stderr, if any, kept as long as the instance.
  NativeInstance(std::string name, pid_t pid, std::shared_ptr<InstanceRegistry> registry,
                 std::shared_ptr<spdlog::logger> logger,
                 std::unique_ptr<OutputCapture> output = nullptr);
  // Leaves a running process alone: stopping instances is the master's decision.
  ~NativeInstance() override;
  NativeInstance(const NativeInstance&) = delete;
  NativeInstance& operator=(const NativeInstance&) = delete;

  const std::string& name() const override { return name_; }
  pid_t pid() const { return pid_; }
  nlohmann::json stats() override;
  ExitStatus wait() override;
  void stop(std::chrono::milliseconds grace) override;

 private:
  using Clock = std::chrono::steady_clock;
  // Returns whether the process has exited, with the lock held; false only when `deadline` passed.
  bool await_exit(std::unique_lock<std::mutex>& lock, std::optional<Clock::time_point> deadline);
  // Without the lock: true once the process is a zombie, false when `deadline` passed.
  bool poll_exit(std::optional<Clock::time_point> deadline) const;
  void signal_locked(int signal);
  void reap_locked();

  const std::string name_;
  const pid_t pid_;
  int pidfd_ = -1;
  std::shared_ptr<InstanceRegistry> registry_;
  std::shared_ptr<spdlog::logger> logger_;
  ProcessStats stats_;

  std::mutex mutex_;
  std::condition_variable changed_;
  bool reaping_ = false;  // a thread is waiting for the process without the lock
  bool exited_ = false;   // reaped; status_ is set
  ExitStatus status_;
  std::unique_ptr<OutputCapture> output_;
};

}  // namespace baetyl::master
