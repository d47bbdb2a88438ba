#include "core/update_waiter.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "core/master.h"
#include "core/master_lock.h"
#include "core/master_update.h"
#include "core/ota_log.h"

namespace baetyl::master {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How often the waiter looks at the marker while the new master starts.
constexpr auto kPollInterval = 50ms;
// After SIGKILL, how long to wait for the child to end before giving up on it.
constexpr auto kKillWait = 5s;

const int kForwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

void say(const std::string& text) {
  std::fprintf(stderr, "baetyl update-waiter: %s\n", text.c_str());
  std::fflush(stderr);
}

sigset_t waited_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int signal : kForwarded) sigaddset(&set, signal);
  sigaddset(&set, SIGCHLD);
  return set;
}

bool is_stop_signal(int signal) {
  return signal == SIGTERM || signal == SIGINT || signal == SIGHUP || signal == SIGQUIT;
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    return "was killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  }
  return "ended";
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// Starts `binary` with `args` as a child that dies with the waiter, with default signal handling,
// in a process group of its own, with the work directory's lock (it takes it over).
pid_t spawn_master(const fs::path& binary, const std::vector<std::string>& args,
                   const MasterLock& lock) {
  std::vector<std::string> argv_text = {binary.string()};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : argv_text) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) {
    if (pid > 0) ::setpgid(pid, pid);  // (the child does the same: whichever runs first)
    return pid;
  }
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::_exit(1);
  ::setpgid(0, 0);
  lock.keep_across_exec();
  for (int signal = 1; signal < NSIG; ++signal) {
    if (signal != SIGKILL && signal != SIGSTOP) ::signal(signal, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execv(argv[0], argv.data());
  std::fprintf(stderr, "baetyl update-waiter: cannot run %s: %s\n", argv[0], strerror(errno));
  ::_exit(127);
}

// Waits up to `timeout` for a signal of `set`; 0 when none came.
int wait_signal(const sigset_t& set, std::chrono::milliseconds timeout) {
  timespec wait{};
  wait.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  wait.tv_nsec = static_cast<long>(timeout.count() % 1000) * 1'000'000;
  const int signal = ::sigtimedwait(&set, nullptr, &wait);
  return signal > 0 ? signal : 0;
}

// The wait status of `child` once it has ended, without reaping it: until finish_child() its pid,
// and so its process group id, cannot go to another process.
std::optional<int> exited(pid_t child) {
  siginfo_t info{};
  if (::waitid(P_PID, child, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != child) {
    return std::nullopt;
  }
  return info.si_code == CLD_EXITED ? W_EXITCODE(info.si_status, 0) : W_EXITCODE(0, info.si_status);
}

// Kills what is left in the process group of a child that has ended (or is given up on) and reaps
// it. A master leaves nothing there (its instances have groups of their own); a new binary that
// is not one may have left processes holding the work directory's lock.
void finish_child(pid_t child) {
  ::kill(-child, SIGKILL);
  ::waitpid(child, nullptr, WNOHANG);
}

// The lock names the waiter while no master runs under it, not a master that has ended.
void name_self(const MasterLock& lock) {
  try {
    lock.write_pid();
  } catch (const std::exception& e) {
    say(e.what());
  }
}

// Closes every descriptor above stderr but `keep`.
void close_descriptors_except(int keep) {
  if (keep <= STDERR_FILENO) {
    ::close_range(STDERR_FILENO + 1, ~0u, 0);
    return;
  }
  if (keep > STDERR_FILENO + 1) ::close_range(STDERR_FILENO + 1, keep - 1, 0);
  ::close_range(keep + 1, ~0u, 0);
}

// Stops a child that did not report in time: SIGTERM, then SIGKILL after `grace`.
void stop_child(pid_t child, std::chrono::milliseconds grace) {
  ::kill(child, SIGTERM);
  const auto deadline = Clock::now() + grace;
  while (Clock::now() < deadline) {
    if (exited(child)) return;
    timespec pause{0, 20'000'000};
    ::nanosleep(&pause, nullptr);
  }
  ::kill(child, SIGKILL);
  const auto kill_deadline = Clock::now() + kKillWait;
  while (Clock::now() < kill_deadline) {
    if (exited(child)) return;
    timespec pause{0, 20'000'000};
    ::nanosleep(&pause, nullptr);
  }
}

struct Trial {
  bool healthy = false;
  bool stopped = false;            // a stop signal came meanwhile (and was forwarded)
  std::string failure;             // why it is not healthy
  std::optional<int> exit_status;  // set when the child is gone
};

// Waits for the child started on a marker in stage "restarting" to remove the marker.
Trial wait_until_healthy(pid_t child, const MasterUpdateMarker& marker, const fs::path& marker_file,
                         const sigset_t& signals) {
  const auto deadline = Clock::now() + marker.timeout;
  bool stopping = false;
  for (;;) {
    if (auto status = exited(child)) {
      Trial trial;
      trial.stopped = stopping;
      trial.exit_status = status;
      trial.failure = stopping ? "the master was stopped before the new binary had started its "
                                 "services"
                               : "the new master binary " + describe_exit(*status) +
                                     " before it had started its services";
      return trial;
    }
    std::error_code ec;
    if (!fs::exists(marker_file, ec) && !ec) return Trial{true, false, {}, std::nullopt};
    if (Clock::now() >= deadline) {
      stop_child(child, marker.grace);
      Trial trial;
      trial.stopped = stopping;
      trial.failure = "the new master binary did not start its services within " +
                      std::to_string(marker.timeout.count()) + " ms";
      if (auto status = exited(child)) trial.exit_status = status;
      if (!trial.exit_status) trial.exit_status = W_EXITCODE(1, 0);
      return trial;
    }
    if (int signal = wait_signal(signals, kPollInterval); signal != 0 && signal != SIGCHLD) {
      stopping = stopping || is_stop_signal(signal);
      ::kill(child, signal);
    }
  }
}

// Forwards signals to the child until it exits; returns its wait status (it is not reaped yet).
int wait_for_exit(pid_t child, const sigset_t& signals) {
  for (;;) {
    if (auto status = exited(child)) return *status;
    int signal = 0;
    if (::sigwait(&signals, &signal) != 0) continue;
    if (signal != SIGCHLD) ::kill(child, signal);
  }
}

// Puts the old binary back after a failed start of the new one and marks the marker for the old
// master to log ROLLEDBACK. False when the old binary could not be put back.
bool roll_back(MasterUpdateMarker& marker, const fs::path& marker_file, const std::string& failure,
               OtaLog& ota_log) {
  say(failure + "; putting back " + marker.backup.string());
  ota_log.append(ota_step::kRollingBack, "MST", marker.trace, failure);
  try {
    restore_binary(marker.backup, marker.binary);
  } catch (const std::exception& e) {
    say(std::string("rollback failed: ") + e.what());
    ota_log.append(ota_step::kFailure, "MST", marker.trace,
                   failure + "; rollback failed: " + e.what());
    MasterUpdateMarker::remove(marker_file);
    return false;
  }
  marker.stage = "rollingback";
  marker.error = failure;
  try {
    marker.save(marker_file);
  } catch (const std::exception& e) {
    // Without the marker the old master logs nothing: the outcome goes to ota.log here.
    say(e.what());
    ota_log.append(ota_step::kFailure, "MST", marker.trace,
                   failure + "; the old binary is back, but " + e.what());
    MasterUpdateMarker::remove(marker_file);
  }
  return true;
}

}  // namespace

bool take_update_waiter() {
  const char* value = std::getenv(kUpdateWaiterVariable);
  const bool taken = value && std::to_string(::getppid()) == value;
  ::unsetenv(kUpdateWaiterVariable);
  return taken;
}

std::string exec_update_waiter(const char* argv0, const fs::path& workdir,
                               const std::vector<std::string>& start_args) {
  std::vector<std::string> text = {argv0, kUpdateWaiterCommand, workdir.string(), "--"};
  text.insert(text.end(), start_args.begin(), start_args.end());
  std::vector<char*> argv;
  for (auto& arg : text) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // The running image, even though bin/baetyl is now another file.
  ::execv("/proc/self/exe", argv.data());
  return std::string("cannot exec /proc/self/exe: ") + strerror(errno);
}

int run_update_waiter(int argc, char** argv) {
  if (argc < 4 || std::string(argv[3]) != "--") {
    say("usage: baetyl update-waiter WORKDIR -- START-ARGUMENTS...");
    return 2;
  }
  const fs::path workdir = argv[2];
  // The work directory's lock, which the master that exec'ed into this kept open: it stays held
  // from that master through this waiter to each master the waiter starts (spawn_master).
  MasterLock lock = MasterLock::acquire(workdir);
  // Nothing else of that master stays open: its log, sockets.
  close_descriptors_except(lock.descriptor());
  const std::vector<std::string> start_args(argv + 4, argv + argc);
  const fs::path marker_file = workdir / kMasterUpdateFile;
  OtaLog ota_log(workdir / kOtaLogFile);

  const sigset_t signals = waited_signals();
  ::sigprocmask(SIG_BLOCK, &signals, nullptr);
  ::setenv(kUpdateWaiterVariable, std::to_string(::getpid()).c_str(), 1);

  auto marker = MasterUpdateMarker::load(marker_file);
  if (!marker || marker->binary.empty()) {
    say("no master update in progress (" + marker_file.string() + " is missing or invalid)");
    return 1;
  }
  bool trial = marker->stage == "restarting";
  for (;;) {
    const pid_t child = spawn_master(marker->binary, start_args, lock);
    if (child < 0) {
      say("cannot start " + marker->binary.string() + ": " + strerror(errno));
      return 1;
    }
    if (trial) {
      trial = false;
      Trial result = wait_until_healthy(child, *marker, marker_file, signals);
      if (!result.healthy) {
        finish_child(child);
        name_self(lock);
        if (!roll_back(*marker, marker_file, result.failure, ota_log)) return 1;
        // Stopped while the new binary started: the old one logs ROLLEDBACK at its next start.
        if (result.stopped) return exit_code_of(*result.exit_status);
        continue;
      }
    }
    const int status = wait_for_exit(child, signals);
    finish_child(child);
    name_self(lock);
    if (WIFEXITED(status) && WEXITSTATUS(status) == kHandOverExitCode) {
      auto next = MasterUpdateMarker::load(marker_file);
      if (next && next->stage == "restarting" && !next->binary.empty()) {
        marker = std::move(next);
        trial = true;
        continue;
      }
    }
    return exit_code_of(status);
  }
}

}  // namespace baetyl::master
