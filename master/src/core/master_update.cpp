#include "core/master_update.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

extern char** environ;

namespace baetyl::master {

namespace fs = std::filesystem;

std::optional<MasterUpdateMarker> MasterUpdateMarker::load(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  try {
    auto j = nlohmann::json::parse(in);
    MasterUpdateMarker marker;
    marker.trace = j.value("trace", "");
    marker.stage = j.value("stage", "");
    marker.attempts = j.value("attempts", 0);
    marker.binary = j.value("binary", "");
    marker.backup = j.value("backup", "");
    marker.error = j.value("error", "");
    return marker;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

void MasterUpdateMarker::save(const fs::path& file) const {
  nlohmann::json j = {{"trace", trace},           {"stage", stage},
                      {"attempts", attempts},     {"binary", binary.string()},
                      {"backup", backup.string()}, {"error", error}};
  fs::create_directories(file.parent_path());
  fs::path temp = file;
  temp += ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << j.dump() << "\n";
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + temp.string());
  }
  fs::rename(temp, file);
}

void MasterUpdateMarker::remove(const fs::path& file) {
  std::error_code ec;
  fs::remove(file, ec);
}

void install_binary(const fs::path& source, const fs::path& target, const fs::path& backup) {
  fs::path staged = target;
  staged += ".new";
  std::error_code ec;
  fs::copy_file(source, staged, fs::copy_options::overwrite_existing, ec);
  if (ec) throw std::runtime_error("cannot copy " + source.string() + " to " + staged.string() +
                                   ": " + ec.message());
  fs::permissions(staged, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec,
                  ec);
  fs::copy_file(target, backup, fs::copy_options::overwrite_existing, ec);
  if (ec) throw std::runtime_error("cannot keep " + target.string() + " as " + backup.string() +
                                   ": " + ec.message());
  fs::rename(staged, target, ec);
  if (ec) throw std::runtime_error("cannot install " + staged.string() + " as " + target.string() +
                                   ": " + ec.message());
}

void restore_binary(const fs::path& backup, const fs::path& target) {
  fs::path staged = target;
  staged += ".new";
  fs::copy_file(backup, staged, fs::copy_options::overwrite_existing);
  fs::rename(staged, target);
}

std::string check_master_binary(const fs::path& binary, const fs::path& workdir,
                                std::chrono::milliseconds timeout) {
  if (!fs::is_regular_file(binary)) return binary.string() + " is not a file";
  if (::access(binary.c_str(), X_OK) != 0) return binary.string() + " is not executable";
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
  if (rc != 0) return "cannot run " + binary.string() + ": " + std::strerror(rc);

  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return binary.string() + " check did not finish within " +
             std::to_string(timeout.count()) + " ms";
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
  return binary.string() + " check failed: " + text;
}

}  // namespace baetyl::master
