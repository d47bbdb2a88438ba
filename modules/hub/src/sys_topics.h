#pragma once
// The hub's $SYS topics, named as mosquitto names them where the meaning is the same: what the
// hub publishes, retained and at QoS 0, every `sys.interval`. Subscribing to them needs a `sub`
// permit covering the `$SYS` filter, and a filter naming `$SYS` (wildcards at the first level do
// not match topics starting with '$').
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace baetyl::hub {

using SysValues = std::vector<std::pair<std::string, std::string>>;

class SysTopics {
 public:
  // `version`: the text of $SYS/broker/version.
  explicit SysTopics(std::string version);

  // The topics and payloads for the hub's `stats` (Hub::stats) `uptime` after its start, `elapsed`
  // since the previous call (for the load averages; zero for the first call).
  SysValues update(const nlohmann::json& stats, std::chrono::seconds uptime,
                   std::chrono::duration<double> elapsed);

 private:
  // Messages per minute over 1, 5 and 15 minutes (exponentially weighted, as mosquitto's).
  struct Load {
    double averages[3] = {0, 0, 0};
    std::uint64_t last = 0;
    bool started = false;
    void add(std::uint64_t total, double seconds);
  };

  std::string version_;
  Load received_;
  Load sent_;
};

}  // namespace baetyl::hub
