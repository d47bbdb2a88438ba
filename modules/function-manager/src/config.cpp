#include "config.h"

#include <set>

namespace baetyl::function {

void describe(config::Reader& r, RuleConfig& c) {
  r.field("clientid", c.client_id).required().not_empty().matches("[0-9A-Za-z_-]{1,128}");
  r.field("subscribe", c.subscribe).required();
  r.section("function",
            [&](config::Reader& f) { f.field("name", c.function).required().not_empty(); });
  if (r.field("publish", c.publish).required().present() && !c.publish.topic.empty()) {
    bool wildcard = c.publish.topic.find_first_of("+#") != std::string::npos;
    r.check(!wildcard, "publish.topic",
            "'" + c.publish.topic + "' is not a valid publish topic: it has a wildcard");
    r.check(c.publish.topic[0] != '$', "publish.topic",
            "'" + c.publish.topic + "' is not a valid publish topic: it starts with '$'");
  }
  r.section("retry", [&](config::Reader& s) { s.field("max", c.retry_max).min(0).max(100); });
}

void describe(config::Reader& r, InstanceConfig& c) {
  r.field("min", c.min).min(0).max(100);
  r.field("max", c.max).min(1).max(100);
  r.field("idletime", c.idle_time).min(std::chrono::milliseconds(1));
  r.field("evicttime", c.evict_time).min(std::chrono::milliseconds(1));
  r.field("calls", c.calls).min(1).max(1000);
  r.check(c.min <= c.max, "min",
          "must not exceed instance.max (" + std::to_string(c.min) + " > " + std::to_string(c.max) +
              ")");
}

void describe(config::Reader& r, FunctionConfig& c) {
  r.field("name", c.name).required().not_empty();
  r.field("service", c.service).required().not_empty();
  r.field("instance", c.instance);
  r.section("message", [&](config::Reader& m) {
    m.section("length", [&](config::Reader& l) {
      l.field("max", c.message_length_max)
          .min(config::ByteSize{1})
          .max(config::ByteSize{std::uint64_t{1} << 31});
    });
  });
  r.section("backoff", [&](config::Reader& b) {
    b.field("max", c.backoff_max).min(std::chrono::milliseconds(1));
  });
  r.field("timeout", c.timeout).min(std::chrono::milliseconds(1));
}

const FunctionConfig* ManagerConfig::find_function(const std::string& name) const {
  for (const auto& f : functions) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

void describe(config::Reader& r, ManagerConfig& c) {
  r.field("functions", c.functions);
  r.field("rules", c.rules);
  r.section("report", [&](config::Reader& report) {
    report.field("interval", c.report_interval).min(std::chrono::milliseconds(100));
  });
  std::set<std::string> names;
  for (std::size_t i = 0; i < c.functions.size(); ++i) {
    const auto& name = c.functions[i].name;
    if (name.empty()) continue;
    r.check(names.insert(name).second, "functions[" + std::to_string(i) + "].name",
            "duplicate function name '" + name + "'");
  }
  std::set<std::string> client_ids;
  for (std::size_t i = 0; i < c.rules.size(); ++i) {
    const auto& rule = c.rules[i];
    std::string at = "rules[" + std::to_string(i) + "]";
    if (!rule.client_id.empty()) {
      r.check(client_ids.insert(rule.client_id).second, at + ".clientid",
              "duplicate rule clientid '" + rule.client_id + "'");
    }
    if (!rule.function.empty()) {
      r.check(c.find_function(rule.function) != nullptr, at + ".function.name",
              "no function named '" + rule.function + "' in functions");
    }
  }
}

ManagerConfig parse_manager_config(const std::string& yaml, const std::string& source) {
  config::Reader reader(YAML::Load(yaml), source);
  ManagerConfig result;
  reader.read(result);
  reader.throw_if_errors();
  return result;
}

}  // namespace baetyl::function
