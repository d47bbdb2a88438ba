#pragma once
// A real `baetyl start` on a temporary work directory in native mode, with a test service package:
// a shell script that records its pid, argv and environment under out/ and then behaves as its
// MODE variable says (see master_run.cpp).
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "baetyl/http/client.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"

namespace baetyl::testing {

class MasterRun {
 public:
  // `mode` goes into conf.yml: native, or docker for services in containers.
  explicit MasterRun(std::string mode = "native");
  ~MasterRun();

  const std::filesystem::path& workdir() const { return dir_.path(); }
  std::string socket() const { return (dir_.path() / "var/run/baetyl.sock").string(); }

  // etc/baetyl/conf.yml with the mode, the socket above and `extra` appended.
  void write_conf(const std::string& grace = "2s", const std::string& extra = "");
  // var/db/baetyl/application.yml; `services` is the YAML list under services: (each item may use
  // the anchors of kServiceDefaults: image test/svc and the pkg and out mounts).
  // `extra_volumes` are more items of volumes: (after pkg and out).
  void write_app(const std::string& version, const std::string& services,
                 const std::string& file = "var/db/baetyl/application.yml",
                 const std::string& extra_volumes = "");

  // Starts baetyl and waits until the API answers; false (with the output in the log) otherwise.
  // `binary`: the program to start instead of the build's baetyl (an installed copy, say).
  bool start(const std::string& binary = "");
  // Waits for the master to exit after `signal`; returns its exit code.
  int stop(int signal = 15, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  Process& process() { return *master_; }
  bool started() const { return master_ != nullptr; }
  std::string output() const { return master_ ? master_->output() : ""; }

  // GET /v1/system/inspect with the admin credentials.
  nlohmann::json inspect() const;
  // The inspect entry of `instance` of `service`, or null.
  nlohmann::json instance(const std::string& service, const std::string& instance) const;
  // Raw API call with the given credentials (empty: no auth header).
  http::Response call(const std::string& method, const std::string& path,
                      const std::string& username, const std::string& password,
                      const std::string& body = "") const;
  std::string admin_password() const;

  // What the test service recorded about `instance`.
  std::vector<pid_t> pids(const std::string& instance) const;
  std::optional<pid_t> last_pid(const std::string& instance) const;
  std::string env_value(const std::string& instance, const std::string& name) const;
  std::string read_out(const std::string& file) const;
  // The master's log file, var/log/baetyl/baetyl.log.
  std::string log() const;

  // Polls `condition` every 20 ms until it holds or `timeout` passes.
  static bool wait_until(const std::function<bool()>& condition,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  std::string mode_;
  TempDir dir_;
  std::unique_ptr<Process> master_;
};

bool process_alive(pid_t pid);

// One item of the services list running the test script (MODE `mode`, unless `extra` has env).
std::string service(const std::string& name, const std::string& extra = "",
                    const std::string& mode = "run", int replica = 1);
// The same with the agent's image, hub.baidubce.com/baetyl/baetyl-agent:latest (which may update
// the node), running the test script too.
std::string agent_service(const std::string& name, const std::string& extra = "");
// The inspect status of an instance, "" when it is not listed.
std::string status_of(const MasterRun& run, const std::string& service, const std::string& name);
// Runs the built baetyl with `args` (and `env` added to its environment) to its end (10 s at
// most); returns its output.
std::string run_baetyl(const std::vector<std::string>& args, int* code,
                       const std::map<std::string, std::string>& env = {});

// GET /metrics of the master's Prometheus endpoint on 127.0.0.1:`port`; "" when it fails.
std::string scrape_metrics(std::uint16_t port);
// The value of the sample written exactly `series` (name and labels as the endpoint writes them,
// e.g. `baetyl_function_calls_total{service="fm",instance="fm",function="f"}`) in `exposition`;
// nullopt when there is none.
std::optional<double> sample_value(const std::string& exposition, const std::string& series);

// The steps of var/db/baetyl/ota.log, in order.
std::vector<std::string> ota_steps(const MasterRun& run);
// Whether ota.log ends with a final step (UPDATED, ROLLEDBACK or FAILURE).
bool ota_finished(const MasterRun& run);

}  // namespace baetyl::testing
