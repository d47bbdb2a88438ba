#include "core/update_plan.h"

#include <algorithm>

namespace baetyl::master {

UpdatePlan plan_update(const std::vector<RunningService>& running, const AppConfig& target) {
  UpdatePlan plan;
  auto unchanged = [&](const RunningService& service) {
    const ServiceInfo* wanted = target.find_service(service.info.name);
    return wanted && *wanted == service.info && volumes_of(target, *wanted) == service.volumes;
  };
  for (const auto& service : running) {
    (unchanged(service) ? plan.keep : plan.stop).push_back(service.info.name);
  }
  for (const auto& service : target.services) {
    if (std::find(plan.keep.begin(), plan.keep.end(), service.name) == plan.keep.end()) {
      plan.start.push_back(service);
    }
  }
  return plan;
}

}  // namespace baetyl::master
