#include "sql_launcher.h"

#include <signal.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>
#include <utility>
#include <vector>

#include "baetyl/testing/ports.h"

namespace baetyl::function::testing {

RuntimeLauncher::RuntimeLauncher(std::string binary,
                                 const std::map<std::string, std::string>& files)
    : binary_(std::move(binary)) {
  for (const auto& [path, content] : files) dir_.write(path, content);
}

SqlLauncher::SqlLauncher(std::string sql, const std::string& extra_config)
    : RuntimeLauncher("baetyl-function-sql", {{"etc/baetyl/service.yml",
                                               "functions:\n  - name: sql-filter\n    handler: '" +
                                                   sql + "'\n" + extra_config}}) {}

RuntimeLauncher::~RuntimeLauncher() {
  std::lock_guard lock(mutex_);
  processes_.clear();
}

std::string RuntimeLauncher::start(const std::string&, const std::string& instance) {
  std::lock_guard lock(mutex_);
  ++starts_;
  auto port = std::to_string(baetyl::testing::free_port());
  if (broken_) {
    broken_ = false;
    return "127.0.0.1:" + port;
  }
  if (processes_.count(instance)) throw std::runtime_error("instance " + instance + " exists");
  baetyl::testing::ProcessOptions options;
  options.working_dir = dir_.path().string();
  options.output_file = (dir_.path() / (instance + ".log")).string();
  options.env["BAETYL_SERVICE_INSTANCE_ADDRESS"] = "127.0.0.1:" + port;
  processes_[instance] = std::make_unique<baetyl::testing::Process>(
      std::vector<std::string>{baetyl::testing::binary_path(binary_)}, options);
  return "127.0.0.1:" + port;
}

void RuntimeLauncher::stop(const std::string&, const std::string& instance) {
  std::unique_ptr<baetyl::testing::Process> process;
  {
    std::lock_guard lock(mutex_);
    auto it = processes_.find(instance);
    if (it == processes_.end()) return;
    process = std::move(it->second);
    processes_.erase(it);
  }
  if (process->running()) process->stop(SIGTERM);
}

int RuntimeLauncher::running() {
  std::lock_guard lock(mutex_);
  int n = 0;
  for (auto& [name, p] : processes_) n += p->running() ? 1 : 0;
  return n;
}

bool RuntimeLauncher::running(const std::string& instance) {
  std::lock_guard lock(mutex_);
  auto it = processes_.find(instance);
  return it != processes_.end() && it->second->running();
}

int RuntimeLauncher::starts() const {
  std::lock_guard lock(mutex_);
  return starts_;
}

void RuntimeLauncher::kill(const std::string& instance) {
  std::lock_guard lock(mutex_);
  auto it = processes_.find(instance);
  if (it != processes_.end()) it->second->stop(SIGKILL);
}

namespace {
// The state letter of /proc/<pid>/stat ('T' once a SIGSTOP took effect).
char process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto end = text.rfind(')');
  return end != std::string::npos && end + 2 < text.size() ? text[end + 2] : '?';
}
}  // namespace

void RuntimeLauncher::signal(const std::string& instance, int signal) {
  pid_t pid = -1;
  {
    std::lock_guard lock(mutex_);
    auto it = processes_.find(instance);
    if (it == processes_.end()) return;
    pid = it->second->pid();
  }
  ::kill(pid, signal);
  // kill() returns before the signal takes effect: a thread may still answer a call meanwhile.
  for (int i = 0; signal == SIGSTOP && i < 1000 && process_state(pid) != 'T'; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace baetyl::function::testing
