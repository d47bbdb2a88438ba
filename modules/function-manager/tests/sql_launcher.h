#pragma once
// A Launcher that runs the real baetyl-function-sql as child processes (no master), for the pool
// tests: each instance gets a free loopback port and its own working directory.
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"
#include "pool.h"

namespace baetyl::function::testing {

class SqlLauncher : public Launcher {
 public:
  // `extra_config`: more of the runtime's service.yml (its `server` section, say).
  explicit SqlLauncher(std::string sql = "select qos() as qos, topic() as topic, * where id < 10",
                       const std::string& extra_config = "");
  ~SqlLauncher() override;

  std::string start(const std::string& service, const std::string& instance) override;
  void stop(const std::string& service, const std::string& instance) override;

  // Running instances by name.
  int running();
  bool running(const std::string& instance);
  int starts() const;
  // Kills `instance` with SIGKILL, behind the pool's back.
  void kill(const std::string& instance);
  // Sends `signal` to `instance` (SIGSTOP: a runtime that hangs; SIGCONT).
  void signal(const std::string& instance, int signal);
  // The next start() answers with an address where nothing listens.
  void break_next_start() { broken_ = true; }

 private:
  baetyl::testing::TempDir dir_;
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<baetyl::testing::Process>> processes_;
  int starts_ = 0;
  bool broken_ = false;
};

}  // namespace baetyl::function::testing
