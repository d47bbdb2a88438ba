#pragma once
// The function manager: one InstancePool per function, one RuleRunner per rule.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "baetyl/context.h"
#include "config.h"
#include "pool.h"
#include "rule.h"

namespace baetyl::function {

// Starts runtime instances through the master API. Native mode: a free port from the master,
// BAETYL_SERVICE_INSTANCE_ADDRESS=127.0.0.1:<port>, dialed there. Docker mode: 0.0.0.0:50051,
// dialed as <instance name>:50051 on the baetyl network.
class MasterLauncher : public Launcher {
 public:
  explicit MasterLauncher(Context& context) : context_(context) {}
  std::string start(const std::string& service, const std::string& instance) override;
  void stop(const std::string& service, const std::string& instance) override;
  // From the master's inspect: the instance is listed with status running.
  bool running(const std::string& service, const std::string& instance) override;

 private:
  Context& context_;
};

// The QoS 1 outputs a rule's hub client keeps in flight at least (its `buffersize`): the inputs
// in flight, which the hub's window bounds, already bound them, and a window of the default 10
// makes each output wait for the PUBACK of an earlier one.
inline constexpr int kMinOutputWindow = 1000;

class Manager {
 public:
  Manager(Context& context, ManagerConfig config, Launcher& launcher);
  ~Manager();
  void start();
  void stop();
  // {"functions": [{"name", "calls", "errors", "in_flight", "call_duration_seconds"}, ...]}, as
  // reported to the master.
  nlohmann::json stats() const;

 private:
  std::unique_ptr<mqtt::Client> new_rule_client(const RuleConfig& rule) const;

  Context& context_;
  ManagerConfig config_;
  Launcher& launcher_;
  std::map<std::string, std::unique_ptr<InstancePool>> pools_;
  std::vector<std::unique_ptr<RuleRunner>> rules_;
};

// The module's body for baetyl::run.
void run_manager(Context& context);

}  // namespace baetyl::function
