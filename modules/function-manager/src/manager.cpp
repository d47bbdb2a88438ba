#include "manager.h"

#include <absl/synchronization/mutex.h>

#include <algorithm>

#include "baetyl/reporter.h"

namespace baetyl::function {

std::string MasterLauncher::start(const std::string& service, const std::string& instance) {
  std::map<std::string, std::string> env;
  std::string dial;
  if (context_.mode() == "docker") {
    env["BAETYL_SERVICE_INSTANCE_ADDRESS"] = "0.0.0.0:50051";
    dial = instance + ":50051";
  } else {
    auto port = context_.get_available_port();
    env["BAETYL_SERVICE_INSTANCE_ADDRESS"] = "127.0.0.1:" + port;
    dial = "127.0.0.1:" + port;
  }
  env["OPENEDGE_SERVICE_INSTANCE_ADDRESS"] = env["BAETYL_SERVICE_INSTANCE_ADDRESS"];
  context_.start_instance(service, instance, env);
  return dial;
}

void MasterLauncher::stop(const std::string& service, const std::string& instance) {
  context_.stop_instance(service, instance);
}

bool MasterLauncher::running(const std::string& service, const std::string& instance) {
  try {
    for (const auto& s : context_.inspect_system().services) {
      if (s.name != service) continue;
      for (const auto& i : s.instances) {
        if (i.value("name", "") == instance) return i.value("status", "running") == "running";
      }
    }
    return false;
  } catch (const std::exception&) {
    return true;  // the master did not answer: no evidence that the instance ended
  }
}

Manager::Manager(Context& context, ManagerConfig config, Launcher& launcher)
    : context_(context), config_(std::move(config)), launcher_(launcher) {
  for (const auto& f : config_.functions) {
    pools_[f.name] = std::make_unique<InstancePool>(f, launcher_, context_.logger());
  }
  for (const auto& rule : config_.rules) {
    rules_.push_back(std::make_unique<RuleRunner>(rule, *pools_.at(rule.function),
                                                  new_rule_client(rule), context_.logger()));
  }
}

std::unique_ptr<mqtt::Client> Manager::new_rule_client(const RuleConfig& rule) const {
  auto config =
      context_.new_hub_client(rule.client_id, std::vector<mqtt::TopicInfo>{rule.subscribe})
          ->config();
  config.buffer_size = std::max(config.buffer_size, kMinOutputWindow);
  return std::make_unique<mqtt::Client>(std::move(config), context_.logger());
}

Manager::~Manager() { stop(); }

void Manager::start() {
  for (auto& [name, pool] : pools_) pool->start();
  for (auto& rule : rules_) rule->start();
  context_.log().info("function manager: {} rules, {} functions", rules_.size(), pools_.size());
}

void Manager::stop() {
  for (auto& rule : rules_) rule->stop();
  for (auto& [name, pool] : pools_) pool->close();
}

nlohmann::json Manager::stats() const {
  nlohmann::json functions = nlohmann::json::array();
  for (const auto& [name, pool] : pools_) {
    nlohmann::json function = pool->stats().to_json();
    function["name"] = name;
    functions.push_back(std::move(function));
  }
  return {{"functions", std::move(functions)}};
}

void run_manager(Context& context) {
  // Debian's abseil checks every mutex gRPC takes for lock-order cycles (a debug aid costing
  // several percent of the CPU per call).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto config = context.load_config<ManagerConfig>();
  if (config.rules.empty()) context.log().warn("function manager: no rules configured");
  MasterLauncher launcher(context);
  const auto report_interval = config.report_interval;
  Manager manager(context, std::move(config), launcher);
  manager.start();
  Reporter reporter(context, report_interval, [&] { return manager.stats(); });
  if (reporter.active()) {
    context.log().info("function manager: reporting to the master every {}",
                       config::format_duration(report_interval));
  }
  context.wait();
  reporter.stop();
  context.log().info("function manager: stopping");
  manager.stop();
}

}  // namespace baetyl::function
