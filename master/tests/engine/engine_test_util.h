#pragma once
// Helpers shared by the native engine tests: a work directory with an engine, scripts as services
// and bounded waits on conditions.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "baetyl/testing/temp_dir.h"
#include "engine/native_engine.h"
#include "engine/process_util.h"

namespace baetyl::master::test {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using baetyl::testing::read_text;

// Polls `condition` every few milliseconds for up to `timeout`.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = 3s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// Dead: no such process, or a zombie nobody reaped yet.
inline bool gone(pid_t pid) {
  auto info = read_proc_info(pid);
  return !info || info->state == 'Z';
}

inline pid_t pid_of(Instance& instance) { return instance.stats()["process"]["id"].get<pid_t>(); }

// NUL-separated /proc/<pid>/<file> (cmdline, environ) as a list.
inline std::vector<std::string> proc_list(pid_t pid, const std::string& file) {
  auto text = read_text("/proc/" + std::to_string(pid) + "/" + file);
  std::vector<std::string> items;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, '\0')) items.push_back(item);
  return items;
}

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() {
    fs::create_directories(work_.path() / "bin");
    fs::create_directories(out());
  }

  NativeEngineOptions options() const {
    NativeEngineOptions o;
    o.workdir = work_.path();
    o.bin_dirs = {work_.path() / "bin"};
    o.leftover_grace = 300ms;
    return o;
  }

  NativeEngine& engine() {
    if (!engine_) engine_ = std::make_unique<NativeEngine>(options());
    return *engine_;
  }

  const fs::path& workdir() const { return work_.path(); }
  // Where scripts leave their marks; passed to them as $OUT.
  fs::path out() const { return work_.path() / "out"; }

  // Writes an executable shell script at `relative` under the work directory.
  fs::path script(const std::string& relative, const std::string& body) const {
    auto path = work_.write(relative, "#!/bin/sh\n" + body);
    fs::permissions(path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
    return path;
  }

  // A script installed as the module executable `name` (found through bin_dirs).
  ServiceInfo installed(const std::string& service, const std::string& name,
                        const std::string& body) const {
    script("bin/" + name, body);
    ServiceInfo info;
    info.name = service;
    info.image = "hub.baidubce.com/baetyl/" + name + ":latest";
    info.replica = 1;
    return info;
  }

  InstanceSpec spec(const ServiceInfo& info, const std::string& instance = "") const {
    InstanceSpec s;
    s.service = info.name;
    s.instance = instance.empty() ? info.name : instance;
    s.info = info;
    s.env = {{"OUT", out().string()}};
    return s;
  }

  // A service `name` running the program `image` (found through bin_dirs or PATH) with `args`.
  static ServiceInfo program(const std::string& name, const std::string& image,
                             std::vector<std::string> args = {}) {
    ServiceInfo info;
    info.name = name;
    info.image = image;
    info.args = std::move(args);
    return info;
  }

  // setup_service + start, on this fixture's engine or on `on`.
  std::unique_ptr<Instance> run(const ServiceInfo& info, const std::string& instance = "") {
    return run_on(engine(), info, instance);
  }
  std::unique_ptr<Instance> run_on(NativeEngine& on, const ServiceInfo& info,
                                   const std::string& instance = "") {
    on.setup_service(info, {});
    return on.start(spec(info, instance));
  }

  // Waits until a script ran `mark NAME` (defined by the preamble below).
  bool marked(const std::string& name, std::chrono::milliseconds timeout = 3s) const {
    return eventually([&] { return fs::exists(out() / name); }, timeout);
  }

  nlohmann::json state_file() const {
    auto text = read_text(workdir() / "var/db/baetyl/native-instances.json");
    return text.empty() ? nlohmann::json() : nlohmann::json::parse(text);
  }

  baetyl::testing::TempDir work_;
  std::unique_ptr<NativeEngine> engine_;
};

// Shell preamble: `mark NAME [TEXT]` creates $OUT/NAME atomically.
inline const char* kMark =
    "mark() { echo \"$2\" > \"$OUT/$1.tmp\" && mv \"$OUT/$1.tmp\" \"$OUT/$1\"; }\n";

}  // namespace baetyl::master::test
