#include "config.h"

#include <map>
#include <set>
#include <utility>

namespace baetyl::remote {

void describe(config::Reader& r, RemoteConfig& c) {
  r.field("name", c.name).required().not_empty();
  mqtt::describe(r, c.client);
  r.check(!c.client.address.empty(), "address", "is required");
  r.check(c.client.subscriptions.empty(), "subscriptions",
          "a remote has no subscriptions of its own: put them in rules[].remote.subscriptions");
}

namespace {

void describe_side(config::Reader& r, RuleSide& side) {
  r.field("clientid", side.client_id).not_empty();
  r.field("subscriptions", side.subscriptions);
}

}  // namespace

void describe(config::Reader& r, RuleConfig& c) {
  r.section("hub", [&](config::Reader& hub) { describe_side(hub, c.hub); });
  r.section("remote", [&](config::Reader& remote) {
    remote.field("name", c.remote_name).required().not_empty();
    describe_side(remote, c.remote);
  });
}

const RemoteConfig* BridgeConfig::find_remote(const std::string& name) const {
  for (const auto& remote : remotes) {
    if (remote.name == name) return &remote;
  }
  return nullptr;
}

ResolvedRule resolve_rule(const BridgeConfig& config, std::size_t index) {
  const RuleConfig& rule = config.rules.at(index);
  const RemoteConfig* remote = config.find_remote(rule.remote_name);
  if (!remote) throw std::invalid_argument("no remote named '" + rule.remote_name + "'");
  ResolvedRule resolved;
  resolved.index = index;
  resolved.remote_name = rule.remote_name;
  resolved.remote = remote->client;
  if (!rule.remote.client_id.empty()) {
    resolved.remote.client_id = rule.remote.client_id;
  } else if (resolved.remote.client_id.empty()) {
    resolved.remote.client_id = remote->name;
  }
  resolved.remote.subscriptions = rule.remote.subscriptions;
  resolved.hub = config.hub;
  if (!rule.hub.client_id.empty()) {
    resolved.hub.client_id = rule.hub.client_id;
  } else if (resolved.hub.client_id.empty()) {
    resolved.hub.client_id = resolved.remote.client_id;
  }
  resolved.hub.subscriptions = rule.hub.subscriptions;
  return resolved;
}

void describe(config::Reader& r, BridgeConfig& c) {
  r.field("hub", c.hub);
  r.check(!c.hub.address.empty(), "hub.address", "is required to connect to the hub");
  r.check(c.hub.subscriptions.empty(), "hub.subscriptions",
          "the bridge subscribes per rule: put them in rules[].hub.subscriptions");
  r.field("remotes", c.remotes);
  r.field("rules", c.rules);
  r.section("report", [&](config::Reader& report) {
    report.field("interval", c.report_interval).min(std::chrono::milliseconds(100));
  });

  std::set<std::string> names;
  for (std::size_t i = 0; i < c.remotes.size(); ++i) {
    const auto& name = c.remotes[i].name;
    if (name.empty()) continue;
    r.check(names.insert(name).second, "remotes[" + std::to_string(i) + "].name",
            "duplicate remote name '" + name + "'");
  }

  // Two connections with one client ID to one broker take the session from each other in turn.
  std::map<std::string, std::size_t> hub_ids;
  std::map<std::pair<std::string, std::string>, std::size_t> remote_ids;  // (address, id)
  for (std::size_t i = 0; i < c.rules.size(); ++i) {
    const auto& rule = c.rules[i];
    const std::string at = "rules[" + std::to_string(i) + "]";
    if (rule.remote_name.empty()) continue;
    if (!c.find_remote(rule.remote_name)) {
      r.error(at + ".remote.name", "no remote named '" + rule.remote_name + "' in remotes");
      continue;
    }
    ResolvedRule resolved = resolve_rule(c, i);
    auto [hub_at, hub_new] = hub_ids.emplace(resolved.hub.client_id, i);
    r.check(hub_new, at + ".hub.clientid",
            "client ID '" + resolved.hub.client_id + "' is also the hub client ID of rules[" +
                std::to_string(hub_at->second) + "]: give each rule its own rules[].hub.clientid");
    auto [remote_at, remote_new] =
        remote_ids.emplace(std::make_pair(resolved.remote.address, resolved.remote.client_id), i);
    r.check(remote_new, at + ".remote.clientid",
            "client ID '" + resolved.remote.client_id + "' is also the client ID of rules[" +
                std::to_string(remote_at->second) + "] on " + resolved.remote.address +
                ": give each rule its own rules[].remote.clientid");
  }
}

BridgeConfig parse_bridge_config(const std::string& yaml, const std::string& source) {
  return config::load_string<BridgeConfig>(yaml, source);
}

}  // namespace baetyl::remote
