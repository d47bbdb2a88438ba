#pragma once
// Which services an application update keeps, stops and starts. A service keeps running only when
// its whole definition and the volumes it mounts are unchanged.
#include <string>
#include <vector>

#include "config/app_config.h"

namespace baetyl::master {

struct RunningService {
  ServiceInfo info;
  std::vector<VolumeInfo> volumes;  // volumes_of() when it was started
};

struct UpdatePlan {
  std::vector<std::string> keep;   // running and unchanged
  std::vector<std::string> stop;   // removed or changed, in running order
  std::vector<ServiceInfo> start;  // new or changed, in the target's order
};

UpdatePlan plan_update(const std::vector<RunningService>& running, const AppConfig& target);

}  // namespace baetyl::master
