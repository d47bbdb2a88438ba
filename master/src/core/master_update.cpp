#include "core/master_update.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"

extern char** environ;

namespace baetyl::master {

namespace fs = std::filesystem;

namespace {

// The end of a failed check's output is enough to tell why; a binary could print without end.
constexpr std::size_t kMaxCheckOutput = 2048;

}  // namespace

std::optional<MasterUpdateMarker> MasterUpdateMarker::load(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  try {
    auto j = nlohmann::json::parse(in);
    MasterUpdateMarker marker;
    marker.trace = j.value("trace", "");
    marker.stage = j.value("stage", "");
    marker.binary = j.value("binary", "");
    marker.backup = j.value("backup", "");
    marker.timeout = std::chrono::milliseconds(j.value("timeout_ms", marker.timeout.count()));
    marker.grace = std::chrono::milliseconds(j.value("grace_ms", marker.grace.count()));
    marker.error = j.value("error", "");
    return marker;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

void MasterUpdateMarker::save(const fs::path& file) const {
  nlohmann::json j = {{"trace", trace},
                      {"stage", stage},
                      {"binary", binary.string()},
                      {"backup", backup.string()},
                      {"timeout_ms", timeout.count()},
                      {"grace_ms", grace.count()},
                      {"error", error}};
  write_file_atomically(file, j.dump() + "\n", 0600);
}

void MasterUpdateMarker::remove(const fs::path& file) {
  std::error_code ec;
  fs::remove(file, ec);
}

void install_binary(const fs::path& staged, const fs::path& target, const fs::path& backup) {
  std::error_code ec;
  fs::copy_file(target, backup, fs::copy_options::overwrite_existing, ec);
  if (ec) throw std::runtime_error("cannot keep " + target.string() + " as " + backup.string() +
                                   ": " + ec.message());
  fs::rename(staged, target, ec);
  if (ec) throw std::runtime_error("cannot install " + staged.string() + " as " + target.string() +
                                   ": " + ec.message());
}

void restore_binary(const fs::path& backup, const fs::path& target) {
  fs::path staged = target;
  staged += ".rollback";
  fs::copy_file(backup, staged, fs::copy_options::overwrite_existing);
  fs::rename(staged, target);
}

std::string check_master_binary(const fs::path& binary, const fs::path& workdir,
                                std::chrono::milliseconds timeout) {
  if (!fs::is_regular_file(binary)) return "not a file";
  if (::access(binary.c_str(), X_OK) != 0) return "not executable";
  fs::path output = workdir / "var/run/baetyl/master-check.out";
  fs::create_directories(output.parent_path());

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<std::string> args = {binary.string(), "check", "-w", workdir.string()};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, binary.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return std::string("cannot run it: ") + std::strerror(rc);

  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return "`check` did not finish within " + std::to_string(timeout.count()) + " ms";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::ifstream in(output);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::error_code ec;
  fs::remove(output, ec);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && text.find("OK!") != std::string::npos) {
    return {};
  }
  if (text.size() > kMaxCheckOutput) text = "..." + text.substr(text.size() - kMaxCheckOutput);
  return "`check` failed: " + text;
}

}  // namespace baetyl::master
