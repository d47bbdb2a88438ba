#pragma once
// Launchers that run a real function runtime as child processes (no master), for the pool
// tests: each instance gets a free loopback port; they share one working directory.
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"
#include "pool.h"

namespace baetyl::function::testing {

class RuntimeLauncher : public Launcher {
 public:
  // `binary`: the runtime's program in the build's bin directory; `files`: its working
  // directory's files by relative path (etc/baetyl/service.yml, the code).
  RuntimeLauncher(std::string binary, const std::map<std::string, std::string>& files);
  ~RuntimeLauncher() override;

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
  std::string binary_;
  baetyl::testing::TempDir dir_;
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<baetyl::testing::Process>> processes_;
  int starts_ = 0;
  bool broken_ = false;
};

// baetyl-function-sql serving the function sql-filter, the query `sql`.
class SqlLauncher : public RuntimeLauncher {
 public:
  // `extra_config`: more of the runtime's service.yml (its `server` section, say).
  explicit SqlLauncher(std::string sql = "select qos() as qos, topic() as topic, * where id < 10",
                       const std::string& extra_config = "");
};

}  // namespace baetyl::function::testing
