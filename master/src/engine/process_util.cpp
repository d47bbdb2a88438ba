#include "engine/process_util.h"

#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>
#include <system_error>
#include <unordered_map>

namespace baetyl::master {

std::vector<std::string> merge_environment(const char* const* base, const EnvList& overrides) {
  std::vector<std::string> env;
  std::unordered_map<std::string, std::size_t> index;
  auto set = [&](std::string_view name, std::string entry) {
    auto [it, inserted] = index.try_emplace(std::string(name), env.size());
    if (inserted) {
      env.push_back(std::move(entry));
    } else {
      env[it->second] = std::move(entry);
    }
  };
  for (; base && *base; ++base) {
    std::string_view entry(*base);
    set(entry.substr(0, entry.find('=')), std::string(entry));
  }
  for (const auto& [name, value] : overrides) set(name, name + "=" + value);
  return env;
}

namespace {

class SpawnAttributes {
 public:
  SpawnAttributes() {
    ::posix_spawnattr_init(&attr_);
    ::posix_spawn_file_actions_init(&actions_);
  }
  ~SpawnAttributes() {
    ::posix_spawn_file_actions_destroy(&actions_);
    ::posix_spawnattr_destroy(&attr_);
  }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

void check(int error, const char* what) {
  if (error != 0) throw std::system_error(error, std::generic_category(), what);
}

}  // namespace

pid_t spawn_process(const std::filesystem::path& program, const std::vector<std::string>& argv,
                    const std::vector<std::string>& env, const std::filesystem::path& cwd,
                    int output_fd) {
  SpawnAttributes spawn;
  sigset_t empty;
  sigset_t all;
  sigemptyset(&empty);
  sigfillset(&all);
  // glibc's sigfillset leaves out its internal signals (32 and 33, below SIGRTMIN), for which
  // posix_spawn then sets SIG_IGN in the child, and an ignored signal stays ignored across exec.
  // sigaddset refuses them too, so set their bits directly.
  constexpr int kBits = 8 * sizeof(all.__val[0]);
  for (int signal = 32; signal < SIGRTMIN; ++signal) {
    all.__val[(signal - 1) / kBits] |= 1UL << ((signal - 1) % kBits);
  }
  check(::posix_spawnattr_setflags(
            &spawn.attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
        "posix_spawnattr_setflags");
  check(::posix_spawnattr_setpgroup(&spawn.attr_, 0), "posix_spawnattr_setpgroup");
  check(::posix_spawnattr_setsigmask(&spawn.attr_, &empty), "posix_spawnattr_setsigmask");
  check(::posix_spawnattr_setsigdefault(&spawn.attr_, &all), "posix_spawnattr_setsigdefault");
  check(::posix_spawn_file_actions_addchdir_np(&spawn.actions_, cwd.c_str()),
        "posix_spawn_file_actions_addchdir_np");
  if (output_fd >= 0) {
    check(::posix_spawn_file_actions_adddup2(&spawn.actions_, output_fd, STDOUT_FILENO),
          "posix_spawn_file_actions_adddup2");
    check(::posix_spawn_file_actions_adddup2(&spawn.actions_, output_fd, STDERR_FILENO),
          "posix_spawn_file_actions_adddup2");
  }
  check(::posix_spawn_file_actions_addclosefrom_np(&spawn.actions_, STDERR_FILENO + 1),
        "posix_spawn_file_actions_addclosefrom_np");

  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& entry : env) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  int error =
      ::posix_spawn(&pid, program.c_str(), &spawn.actions_, &spawn.attr_, args.data(), envp.data());
  if (error != 0) throw std::system_error(error, std::generic_category());
  return pid;
}

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

std::optional<ProcInfo> read_proc_info(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  // The command name may hold spaces and parentheses: count fields from the last ')'.
  std::istringstream fields(text.substr(close + 1));
  std::string field;
  ProcInfo info;
  for (int n = 3; n <= 22 && fields >> field; ++n) {
    if (n == 3) info.state = field.empty() ? '?' : field[0];
    if (n == 5) info.pgrp = static_cast<pid_t>(std::stol(field));
    if (n == 22) {
      info.start_ticks = std::stoull(field);
      return info;
    }
  }
  return std::nullopt;
}

std::vector<pid_t> list_pids() {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    auto name = entry.path().filename().string();
    pid_t pid = 0;
    auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (error == std::errc() && end == name.data() + name.size()) pids.push_back(pid);
  }
  return pids;
}

}  // namespace baetyl::master
