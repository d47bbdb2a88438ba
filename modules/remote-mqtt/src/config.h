#pragma once
// The keys of baetyl-remote-mqtt's service.yml: `hub` (the SDK's client keys), `remotes`, `rules`
// and `report`, with their defaults and checks, and the clients a rule ends up with.
#include <chrono>
#include <string>
#include <vector>

#include "baetyl/config/reader.h"
#include "baetyl/mqtt/client_config.h"

namespace baetyl::remote {

// remotes[]: a broker to bridge to; every client key of `hub` plus a name.
struct RemoteConfig {
  std::string name;  // [MUST], unique
  mqtt::ClientConfig client;
};
void describe(config::Reader& r, RemoteConfig& c);

// rules[].hub and rules[].remote: the rule's client on that side.
struct RuleSide {
  std::string client_id;
  std::vector<mqtt::TopicInfo> subscriptions;  // what this side sends to the other
};

// rules[]: messages of hub.subscriptions go from the hub to the remote, messages of
// remote.subscriptions from the remote to the hub, each on its own topic.
struct RuleConfig {
  RuleSide hub;
  std::string remote_name;  // remote.name [MUST]: one of remotes[].name
  RuleSide remote;
};
void describe(config::Reader& r, RuleConfig& c);

struct BridgeConfig {
  mqtt::ClientConfig hub;  // also read by the SDK's Context; checked again here
  std::vector<RemoteConfig> remotes;
  std::vector<RuleConfig> rules;
  std::chrono::milliseconds report_interval = std::chrono::minutes(1);  // report.interval

  const RemoteConfig* find_remote(const std::string& name) const;
};
// Also checks what involves several keys: hub.address given, remote names unique, every rule
// naming a remote, and no two clients of the bridge with one client ID on one broker.
void describe(config::Reader& r, BridgeConfig& c);

// The two clients of a rule, with the client IDs resolved:
//   remote side: rules[].remote.clientid, else remotes[].clientid, else the remote's name;
//   hub side:    rules[].hub.clientid, else hub.clientid, else the remote side's client ID.
struct ResolvedRule {
  std::size_t index = 0;
  std::string remote_name;
  mqtt::ClientConfig hub;     // with the rule's hub subscriptions
  mqtt::ClientConfig remote;  // with the rule's remote subscriptions
};
ResolvedRule resolve_rule(const BridgeConfig& config, std::size_t index);

// Parses a whole service.yml text (tests); throws config::ConfigError.
BridgeConfig parse_bridge_config(const std::string& yaml, const std::string& source = "<text>");

}  // namespace baetyl::remote
