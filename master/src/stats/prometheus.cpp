#include "stats/prometheus.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <utility>
#include <vector>

namespace baetyl::master {

namespace {

using nlohmann::json;
using Labels = std::vector<std::pair<std::string, std::string>>;

Labels with(Labels labels, std::string key, std::string value) {
  labels.emplace_back(std::move(key), std::move(value));
  return labels;
}

// The samples of one metric family, written together under its HELP and TYPE lines.
struct Sample {
  std::string suffix;  // of a histogram's samples: _bucket, _sum, _count
  Labels labels;
  double value = 0;
};

struct Family {
  std::string help;
  std::string type;  // gauge, counter, histogram
  std::vector<Sample> samples;
};

class Exposition {
 public:
  void add(const std::string& name, const char* type, const char* help, Labels labels, double value,
           std::string suffix = "") {
    auto [it, inserted] = families_.try_emplace(name);
    if (inserted) {
      order_.push_back(name);
      it->second.help = help;
      it->second.type = type;
    }
    it->second.samples.push_back(Sample{std::move(suffix), std::move(labels), value});
  }
  // `object[key]` as a histogram when it has the form LatencyHistogram::to_json() gives
  // (baetyl/histogram.h): cumulative buckets under their bounds, the sum and the count.
  void add_histogram(const std::string& name, const char* help, const Labels& labels,
                     const json& object, const char* key) {
    if (!object.is_object()) return;
    const auto it = object.find(key);
    if (it == object.end() || !it->is_object()) return;
    const json le = it->value("le", json::array());
    const json buckets = it->value("buckets", json::array());
    const json sum = it->value("sum", json());
    const json count = it->value("count", json());
    if (!le.is_array() || !buckets.is_array() || le.size() != buckets.size() || !sum.is_number() ||
        !count.is_number()) {
      return;
    }
    for (std::size_t i = 0; i < le.size(); ++i) {
      if (!le[i].is_number() || !buckets[i].is_number()) return;
    }
    for (std::size_t i = 0; i < le.size(); ++i) {
      add(name, "histogram", help, with(labels, "le", format_bound(le[i].get<double>())),
          buckets[i].get<double>(), "_bucket");
    }
    add(name, "histogram", help, with(labels, "le", "+Inf"), count.get<double>(), "_bucket");
    add(name, "histogram", help, labels, sum.get<double>(), "_sum");
    add(name, "histogram", help, labels, count.get<double>(), "_count");
  }
  // Adds `object[key]` when it is a number.
  void add_number(const std::string& name, const char* type, const char* help, const Labels& labels,
                  const json& object, const char* key, double scale = 1) {
    if (!object.is_object()) return;
    const auto it = object.find(key);
    if (it != object.end() && it->is_number())
      add(name, type, help, labels, it->get<double>() * scale);
  }

  std::string text() const {
    std::string out;
    for (const auto& name : order_) {
      const Family& family = families_.at(name);
      out += "# HELP " + name + " " + family.help + "\n";
      out += "# TYPE " + name + " " + family.type + "\n";
      for (const auto& [suffix, labels, value] : family.samples) {
        out += name + suffix;
        if (!labels.empty()) {
          out += '{';
          for (std::size_t i = 0; i < labels.size(); ++i) {
            if (i > 0) out += ',';
            out += labels[i].first + "=\"" + escape_label_value(labels[i].second) + "\"";
          }
          out += '}';
        }
        out += ' ' + format_value(value) + "\n";
      }
    }
    return out;
  }

  // A bucket's bound as Prometheus' clients write it: 0.0005, not the shortest 5e-04.
  static std::string format_bound(double bound) {
    char text[32];
    std::snprintf(text, sizeof text, "%.15g", bound);
    return text;
  }

  static std::string format_value(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    char text[64];
    if (value == std::floor(value) && std::fabs(value) < 1e15) {
      std::snprintf(text, sizeof text, "%.0f", value);
      return text;
    }
    // The shortest text that reads back as the same double (a start time keeps its fraction).
    const auto result = std::to_chars(text, text + sizeof text, value);
    return std::string(text, result.ptr);
  }

 private:
  std::map<std::string, Family> families_;
  std::vector<std::string> order_;
};

std::string text_of(const json& object, const char* key) {
  if (!object.is_object()) return "";
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// Seconds since the epoch of "2026-12-07T00:52:33.12Z"; -1 when malformed.
double unix_seconds(const std::string& text) {
  std::tm tm{};
  double seconds = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%lf", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &seconds) != 6) {
    return -1;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_sec = 0;
  return static_cast<double>(::timegm(&tm)) + seconds;
}

void add_host(Exposition& out, const json& hardware) {
  const json mem = hardware.value("mem_stats", json::object());
  out.add_number("baetyl_host_memory_total_bytes", "gauge", "Memory of the host.", {}, mem,
                 "total");
  out.add_number("baetyl_host_memory_used_bytes", "gauge", "Memory in use on the host.", {}, mem,
                 "used");
  out.add_number("baetyl_host_swap_total_bytes", "gauge", "Swap space of the host.", {}, mem,
                 "swap_total");
  out.add_number("baetyl_host_swap_used_bytes", "gauge", "Swap space in use on the host.", {}, mem,
                 "swap_used");
  out.add_number("baetyl_host_cpu_usage_ratio", "gauge",
                 "Share of the host's CPU time in use (0 to 1).", {},
                 hardware.value("cpu_stats", json::object()), "used_percent", 0.01);
  const json disk = hardware.value("disk_stats", json::object());
  const Labels path = {{"path", text_of(disk, "path")}};
  out.add_number("baetyl_host_disk_total_bytes", "gauge",
                 "Size of the file system of the master's work directory.", path, disk, "total");
  out.add_number("baetyl_host_disk_used_bytes", "gauge",
                 "Space in use on the file system of the master's work directory.", path, disk,
                 "used");
}

void add_instance(Exposition& out, const Labels& labels, const json& instance) {
  const std::string status = text_of(instance, "status");
  out.add("baetyl_instance_up", "gauge", "1 when the instance runs, 0 otherwise.", labels,
          status == "running" ? 1 : 0);
  for (const char* state : {"running", "restarting", "exited"}) {
    out.add("baetyl_instance_state", "gauge",
            "1 for the state the instance is in (running, restarting, exited).",
            with(labels, "state", state), status == state ? 1 : 0);
  }
  out.add_number("baetyl_instance_restarts_total", "counter",
                 "Restarts of the instance by its restart policy.", labels, instance,
                 "restart_count");
  if (status == "running") {
    if (double started = unix_seconds(text_of(instance, "start_time")); started > 0) {
      out.add("baetyl_instance_start_time_seconds", "gauge",
              "When the instance last started, in seconds since the epoch.", labels, started);
    }
  }
  out.add_number("baetyl_instance_cpu_usage_ratio", "gauge",
                 "Share of one CPU's time the instance uses (0 to 1 per CPU).", labels,
                 instance.value("cpu_stats", json::object()), "used_percent", 0.01);
  out.add_number("baetyl_instance_memory_bytes", "gauge", "Memory the instance uses.", labels,
                 instance.value("mem_stats", json::object()), "used");
}

// What the hub reports (modules/hub: Hub::stats).
void add_hub(Exposition& out, const Labels& labels, const json& stats) {
  out.add_number("baetyl_hub_connections", "gauge", "Clients connected to the hub.", labels, stats,
                 "connections");
  out.add_number("baetyl_hub_sessions", "gauge", "Sessions the hub keeps.", labels, stats,
                 "sessions");
  out.add_number("baetyl_hub_subscriptions", "gauge", "Subscriptions of the hub's sessions.",
                 labels, stats, "subscriptions");
  out.add_number("baetyl_hub_retained_messages", "gauge", "Retained messages the hub holds.",
                 labels, stats, "retained");
  const json messages = stats.value("messages", json::object());
  for (const char* qos : {"0", "1", "2"}) {
    out.add_number("baetyl_hub_messages_received_total", "counter",
                   "PUBLISH packets the hub received from clients, by QoS.",
                   with(labels, "qos", qos), messages.value("in_qos", json::object()), qos);
  }
  for (const char* qos : {"0", "1", "2"}) {
    out.add_number("baetyl_hub_messages_sent_total", "counter",
                   "PUBLISH packets the hub sent to clients, by QoS.", with(labels, "qos", qos),
                   messages.value("out_qos", json::object()), qos);
  }
  out.add_number("baetyl_hub_messages_dropped_total", "counter",
                 "Messages the hub dropped for a full subscriber queue, by QoS.",
                 with(labels, "qos", "0"), messages, "dropped");
  out.add_number("baetyl_hub_messages_dropped_total", "counter",
                 "Messages the hub dropped for a full subscriber queue, by QoS.",
                 with(labels, "qos", "1"), messages, "dropped_qos1");
  out.add_number("baetyl_hub_messages_dropped_total", "counter",
                 "Messages the hub dropped for a full subscriber queue, by QoS.",
                 with(labels, "qos", "2"), messages, "dropped_qos2");
  out.add_number("baetyl_hub_messages_paged_total", "counter",
                 "Deliveries of persistent sessions read back from the store.", labels, messages,
                 "paged");
  const json denied = stats.value("denied", json::object());
  for (const char* action : {"connect", "publish", "reserved", "subscribe"}) {
    out.add_number("baetyl_hub_denied_total", "counter",
                   "Requests the hub refused, by action (reserved: client publishes to $SYS).",
                   with(labels, "action", action), denied, action);
  }
  const json store = stats.value("store", json::object());
  out.add_number("baetyl_hub_store_backlog_messages", "gauge",
                 "Messages waiting to be committed to the hub's store.", labels, store, "backlog");
  out.add_number("baetyl_hub_store_commits_total", "counter", "Group commits of the hub's store.",
                 labels, store, "commits");
  out.add_histogram("baetyl_hub_store_commit_duration_seconds",
                    "Time of the store's group commits (SQLite transaction, BEGIN to COMMIT).",
                    labels, store, "commit_duration_seconds");
  if (const auto rules = stats.find("rules"); rules != stats.end() && rules->is_array()) {
    for (const auto& rule : *rules) {
      Labels route =
          with(with(labels, "source", text_of(rule, "source")), "target", text_of(rule, "target"));
      out.add_number("baetyl_hub_route_messages_total", "counter",
                     "Messages republished by a static route of the hub.", route, rule, "messages");
    }
  }
}

// What remote-mqtt reports (modules/remote-mqtt: Bridge::stats).
void add_remote_mqtt(Exposition& out, const Labels& labels, const json& rules) {
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const json& rule = rules[i];
    if (!rule.is_object()) continue;
    const Labels base =
        with(with(labels, "rule", std::to_string(i)), "remote", text_of(rule, "remote"));
    for (const char* direction : {"hub_to_remote", "remote_to_hub"}) {
      const json figures = rule.value(direction, json::object());
      const Labels at = with(base, "direction", direction);
      out.add_number("baetyl_remote_mqtt_messages_forwarded_total", "counter",
                     "Messages a rule forwarded, by direction.", at, figures, "forwarded");
      out.add_number("baetyl_remote_mqtt_inflight_messages", "gauge",
                     "Messages forwarded and not yet acknowledged, by direction.", at, figures,
                     "inflight");
    }
    for (const char* link : {"hub_client", "remote_client"}) {
      const json client = rule.value(link, json::object());
      const Labels at =
          with(base, "link", std::string(link).substr(0, std::string(link).find('_')));
      out.add_number("baetyl_remote_mqtt_reconnects_total", "counter",
                     "Connections of a rule's client after its first, by link.", at, client,
                     "reconnects");
      if (const auto connected = client.find("connected");
          connected != client.end() && connected->is_boolean()) {
        out.add("baetyl_remote_mqtt_connected", "gauge", "1 while a rule's client is connected.",
                at, connected->get<bool>() ? 1 : 0);
      }
    }
  }
}

// What the function manager reports (modules/function-manager: Manager::stats), per function.
void add_function_manager(Exposition& out, const Labels& labels, const json& functions) {
  for (const auto& function : functions) {
    if (!function.is_object()) continue;
    const Labels at = with(labels, "function", text_of(function, "name"));
    out.add_number("baetyl_function_calls_total", "counter",
                   "Calls of a function by the function manager (each retry is a call).", at,
                   function, "calls");
    out.add_number("baetyl_function_errors_total", "counter",
                   "Calls of a function that ended with an error (gRPC status other than OK).", at,
                   function, "errors");
    out.add_number("baetyl_function_in_flight", "gauge", "Calls of a function not yet answered.",
                   at, function, "in_flight");
    out.add_histogram("baetyl_function_call_duration_seconds",
                      "Time from the start of a call of a function to its answer.", at, function,
                      "call_duration_seconds");
  }
}

// What the timer reports (modules/timer: TimerStats).
void add_timer(Exposition& out, const Labels& labels, const json& timer) {
  out.add_number("baetyl_timer_ticks_total", "counter",
                 "Ticks of the timer whose message was published (acknowledged by the hub at QoS "
                 "1, written at QoS 0).",
                 labels, timer, "ticks");
  out.add_number("baetyl_timer_publish_failures_total", "counter",
                 "Ticks of the timer whose message was not published.", labels, timer,
                 "publish_failures");
  out.add_number("baetyl_timer_last_tick_timestamp_seconds", "gauge",
                 "When the timer's last published tick was made, in seconds since the epoch.",
                 labels, timer, "last_tick");
}

}  // namespace

std::string escape_label_value(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string render_metrics(const json& inspect) {
  Exposition out;
  const json software = inspect.value("software", json::object());
  out.add("baetyl_master_info", "gauge", "The master's version, mode and application version.",
          {{"version", text_of(software, "bin_version")},
           {"mode", text_of(software, "mode")},
           {"conf_version", text_of(software, "conf_version")}},
          1);
  add_host(out, inspect.value("hardware", json::object()));
  for (const auto& service : inspect.value("services", json::array())) {
    const std::string name = text_of(service, "name");
    for (const auto& instance : service.value("instances", json::array())) {
      const Labels labels = {{"service", name}, {"instance", text_of(instance, "name")}};
      add_instance(out, labels, instance);
      // Modules are told apart by what they report, whatever their service is called.
      if (instance.contains("messages") && instance["messages"].is_object() &&
          instance["messages"].contains("in")) {
        add_hub(out, labels, instance);
      }
      if (const auto rules = instance.find("rules"); rules != instance.end() && rules->is_array() &&
                                                     !rules->empty() &&
                                                     (*rules)[0].contains("hub_to_remote")) {
        add_remote_mqtt(out, labels, *rules);
      }
      if (const auto functions = instance.find("functions");
          functions != instance.end() && functions->is_array()) {
        add_function_manager(out, labels, *functions);
      }
      if (const auto timer = instance.find("timer");
          timer != instance.end() && timer->is_object() && timer->contains("ticks")) {
        add_timer(out, labels, *timer);
      }
    }
  }
  return out.text();
}

}  // namespace baetyl::master
