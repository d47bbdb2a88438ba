#include "engine/native_instance.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <thread>

#include "engine/process_util.h"

namespace baetyl::master {

NativeInstance::NativeInstance(std::string name, pid_t pid,
                               std::shared_ptr<InstanceRegistry> registry,
                               std::shared_ptr<spdlog::logger> logger,
                               std::unique_ptr<OutputCapture> output)
    : name_(std::move(name)),
      pid_(pid),
      pidfd_(open_pidfd(pid)),
      registry_(std::move(registry)),
      logger_(std::move(logger)),
      stats_(pid),
      output_(std::move(output)) {}

NativeInstance::~NativeInstance() {
  if (pidfd_ >= 0) ::close(pidfd_);
}

nlohmann::json NativeInstance::stats() {
  std::lock_guard lock(mutex_);
  nlohmann::json json = {{"process", {{"id", pid_}, {"name", name_}}}};
  // Under the lock the pid cannot be reaped, hence not reused, while /proc is read.
  if (!exited_) {
    auto figures = stats_.collect();
    if (figures.is_object()) json.update(figures);
  }
  return json;
}

ExitStatus NativeInstance::wait() {
  std::unique_lock lock(mutex_);
  await_exit(lock, std::nullopt);
  return status_;
}

void NativeInstance::stop(std::chrono::milliseconds grace) {
  std::unique_lock lock(mutex_);
  if (exited_) return;
  signal_locked(SIGTERM);
  if (await_exit(lock, Clock::now() + grace)) return;
  logger_->warn("instance {} (pid {}) still runs {} ms after SIGTERM: killing its process group",
                name_, pid_, grace.count());
  signal_locked(SIGKILL);
  await_exit(lock, std::nullopt);
}

bool NativeInstance::await_exit(std::unique_lock<std::mutex>& lock,
                                std::optional<Clock::time_point> deadline) {
  while (!exited_) {
    if (reaping_) {
      if (!deadline) {
        changed_.wait(lock);
      } else if (changed_.wait_until(lock, *deadline) == std::cv_status::timeout) {
        return exited_;
      }
      continue;
    }
    reaping_ = true;
    lock.unlock();
    bool ready = poll_exit(deadline);
    lock.lock();
    reaping_ = false;
    if (ready) reap_locked();
    changed_.notify_all();
    if (!ready) return false;
  }
  return true;
}

bool NativeInstance::poll_exit(std::optional<Clock::time_point> deadline) const {
  if (pidfd_ >= 0) {
    for (;;) {
      int timeout = -1;
      if (deadline) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
        timeout = static_cast<int>(std::max<std::int64_t>(left.count(), 0));
      }
      pollfd fd{pidfd_, POLLIN, 0};
      int n = ::poll(&fd, 1, timeout);
      if (n > 0) return true;
      if (n == 0 && deadline && Clock::now() >= *deadline) return false;
      if (n < 0 && errno != EINTR) break;  // fall back to polling waitid below
    }
  }
  for (;;) {
    siginfo_t info{};
    int r = ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT);
    // ECHILD: reaped behind our back (SIGCHLD ignored?); reap_locked reports it.
    if ((r == 0 && info.si_pid == pid_) || (r < 0 && errno == ECHILD)) return true;
    if (deadline && Clock::now() >= *deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void NativeInstance::signal_locked(int signal) {
  // The leader may have moved to another group; it gets the signal anyway.
  ::kill(-pid_, signal);
  ::kill(pid_, signal);
}

void NativeInstance::reap_locked() {
  // The zombie leader still holds its group id, so this reaches only what is left of its group.
  ::kill(-pid_, SIGKILL);
  int status = 0;
  pid_t r = -1;
  do {
    r = ::waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r == pid_ && WIFEXITED(status)) {
    status_ = {WEXITSTATUS(status), 0};
  } else if (r == pid_ && WIFSIGNALED(status)) {
    status_ = {0, WTERMSIG(status)};
  } else {
    logger_->error("cannot collect the exit status of instance {} (pid {}): {}", name_, pid_,
                   r < 0 ? std::generic_category().message(errno) : "unexpected wait status");
    status_ = {-1, 0};
  }
  exited_ = true;
  registry_->remove(pid_);
}

}  // namespace baetyl::master
