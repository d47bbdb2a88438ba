#pragma once
// The function manager's own keys of service.yml: `rules` and `functions` (the shared `hub` and
// `logger` keys belong to baetyl::ServiceConfig).
#include <chrono>
#include <string>
#include <vector>

#include "baetyl/config/reader.h"
#include "baetyl/config/units.h"
#include "baetyl/mqtt/client_config.h"

namespace baetyl::function {

// rules[]: one hub client per rule; messages on subscribe.topic go through function.name and the
// results are published on publish.topic.
struct RuleConfig {
  std::string client_id;      // clientid [MUST]
  mqtt::TopicInfo subscribe;  // subscribe{topic [MUST], qos 0}
  std::string function;       // function{name [MUST]}
  mqtt::TopicInfo publish;    // publish{topic [MUST], qos 0}
  int retry_max = 3;          // retry{max}: calls after the first failed one
};
void describe(config::Reader& r, RuleConfig& c);

struct InstanceConfig {
  int min = 0;                                                     // kept running, 0..100
  int max = 1;                                                     // started at most, 1..100
  std::chrono::milliseconds idle_time = std::chrono::minutes(10);  // idletime
  std::chrono::milliseconds evict_time = std::chrono::minutes(1);  // evicttime
  // Calls in flight per instance, 1..1000: as many as the hub has in flight to a rule (its
  // default QoS 1 window is 100), so that a runtime on a call stream gets them in large batches
  // (SQL: 16 in flight gave 17,000 msg/s, 100 gave 26,000 to 36,000). An interpreter serving
  // calls on threads that share one lock (Python) may do better with 1 or 2 and more instances.
  int calls = 100;
};
void describe(config::Reader& r, InstanceConfig& c);

// functions[]: a function served by instances of the runtime service `service`.
struct FunctionConfig {
  std::string name;     // [MUST], unique
  std::string service;  // [MUST]
  InstanceConfig instance;
  config::ByteSize message_length_max{4u << 20};                    // message.length.max
  std::chrono::milliseconds backoff_max = std::chrono::minutes(1);  // backoff.max
  std::chrono::milliseconds timeout = std::chrono::seconds(30);     // timeout
};
void describe(config::Reader& r, FunctionConfig& c);

struct ManagerConfig {
  std::vector<RuleConfig> rules;
  std::vector<FunctionConfig> functions;
  // report.interval: how often the stats go to the master (when a master started the manager).
  std::chrono::milliseconds report_interval = std::chrono::minutes(1);

  // The function named `name`, or nullptr.
  const FunctionConfig* find_function(const std::string& name) const;
};
// Also checks the references between keys: unique function names and rule client ids, every rule
// naming a function that exists, instance.min <= instance.max.
void describe(config::Reader& r, ManagerConfig& c);

// Parses a whole service.yml text (tests and `check`); throws config::ConfigError.
ManagerConfig parse_manager_config(const std::string& yaml, const std::string& source = "<text>");

}  // namespace baetyl::function
