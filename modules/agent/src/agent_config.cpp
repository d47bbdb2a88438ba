#include "agent_config.h"

#include <unistd.h>

#include <stdexcept>

#include "baetyl/mqtt/topic.h"
#include "baetyl/mqtt/transport.h"

namespace baetyl::agent {
namespace {

using namespace std::chrono_literals;

constexpr const char* kDefaultReportPath = "/v1/edge/info";

std::optional<mqtt::Endpoint> endpoint_of(const std::string& address) {
  try {
    return mqtt::parse_endpoint(address);
  } catch (const std::invalid_argument&) {
    return std::nullopt;
  }
}

// A required PEM file of the TLS link: given, and readable by this process.
void check_file(config::Reader& r, const char* key, const std::string& path, const char* what) {
  if (path.empty()) {
    r.error(key, std::string("is required: ") + what);
  } else if (::access(path.c_str(), R_OK) != 0) {
    r.error(key, "'" + path + "' cannot be read");
  }
}

void describe_mqtt(config::Reader& m, mqtt::ClientConfig& c) {
  describe(m, c);
  if (c.address.empty()) {
    m.error("address", "is required: the ssl:// address of the cloud's MQTT broker");
  } else if (auto endpoint = endpoint_of(c.address); endpoint && !endpoint->tls()) {
    m.error("address", "'" + c.address +
                           "' is not an ssl:// address: the cloud link is TLS with a client "
                           "certificate");
  }
  if (c.client_id.empty()) m.error("clientid", "is required: the id of this device in the cloud");
  if (c.username.empty()) m.error("username", "is required: the username of this device");
  check_file(m, "ca", c.ca, "the CA that signs the cloud's certificate");
  check_file(m, "cert", c.cert, "the device's client certificate");
  check_file(m, "key", c.key, "the device's private key");
  m.check(c.subscriptions.empty(), "subscriptions",
          "is not used by the agent: it subscribes to remote.desire.topic");
}

void describe_http(config::Reader& h, HttpConfig& c) {
  h.field("address", c.address)
      .check(
          [](const std::string& address) {
            try {
              split_https_url(address);
              return true;
            } catch (const std::invalid_argument&) {
              return false;
            }
          },
          "must be an https:// address: the cloud link is HTTPS");
  h.field("timeout", c.timeout).min(1ms);
  for (auto [key, path] : {std::pair{"ca", &c.ca}, {"cert", &c.cert}, {"key", &c.key}}) {
    if (h.field(key, *path).present() && !path->empty() && ::access(path->c_str(), R_OK) != 0) {
      h.error(key, "'" + *path + "' cannot be read");
    }
  }
  h.check(c.cert.empty() == c.key.empty(), c.cert.empty() ? "cert" : "key",
          "cert and key must be given together");
  h.field("insecureSkipVerify", c.insecure_skip_verify);
}

// A topic template whose expansion with `client_id` must be a topic name (report) or filter
// (desire).
void check_topic(config::Reader& r, const char* key, const std::string& topic,
                 const std::string& client_id, bool filter) {
  if (topic.empty() || client_id.empty()) return;  // reported already
  const std::string expanded = expand_topic(topic, client_id);
  const std::string problem =
      filter ? mqtt::check_topic_filter(expanded) : mqtt::check_topic_name(expanded);
  r.check(problem.empty(), key, "'" + expanded + "': " + problem);
}

}  // namespace

std::string expand_topic(const std::string& topic_template, const std::string& client_id) {
  std::string out;
  for (std::size_t i = 0; i < topic_template.size(); ++i) {
    if (topic_template.compare(i, 2, "%s") == 0) {
      out += client_id;
      ++i;
    } else {
      out += topic_template[i];
    }
  }
  return out;
}

std::pair<std::string, std::string> split_https_url(const std::string& url) {
  constexpr std::string_view scheme = "https://";
  if (url.size() <= scheme.size() || url.compare(0, scheme.size(), scheme) != 0) {
    throw std::invalid_argument("'" + url + "' is not an https:// URL");
  }
  const auto slash = url.find_first_of("/?#", scheme.size());
  std::string origin = url.substr(0, slash);
  std::string rest = slash == std::string::npos ? "/" : url.substr(slash);
  if (origin.size() == scheme.size()) throw std::invalid_argument("'" + url + "' has no host");
  if (!rest.empty() && rest.front() != '/') rest.insert(rest.begin(), '/');
  if (const auto hash = rest.find('#'); hash != std::string::npos) rest.resize(hash);
  return {origin, rest};
}

void describe(config::Reader& r, AgentConfig& c) {
  r.section("remote", [&](config::Reader& remote) {
    remote.section("mqtt", [&](config::Reader& m) { describe_mqtt(m, c.mqtt); });
    remote.section("http", [&](config::Reader& h) { describe_http(h, c.http); });
    remote.section("report", [&](config::Reader& report) {
      report.field("url", c.report.url)
          .check(
              [](const std::string& url) {
                return url.starts_with("/") || url.starts_with("https://");
              },
              "must be a path (/v1/edge/info) or an https:// URL");
      report.field("topic", c.report.topic).not_empty();
      report.field("interval", c.report.interval).min(10ms);
      check_topic(report, "topic", c.report.topic, c.mqtt.client_id, false);
    });
    remote.section("desire", [&](config::Reader& desire) {
      desire.field("topic", c.desire.topic).not_empty();
      check_topic(desire, "topic", c.desire.topic, c.mqtt.client_id, true);
    });
  });
  r.section("ota", [&](config::Reader& ota) {
    ota.field("timeout", c.ota.timeout).min(1s);
    ota.section("logger",
                [&](config::Reader& logger) { logger.field("path", c.ota.log_path).not_empty(); });
    ota.section("volume", [&](config::Reader& volume) {
      volume.field("max", c.ota.volume_max).min(config::ByteSize{1});
      volume.field("entries", c.ota.volume_entries_max).min(1);
    });
  });
}

std::string AgentConfig::report_topic() const { return expand_topic(report.topic, mqtt.client_id); }

std::string AgentConfig::desire_topic() const { return expand_topic(desire.topic, mqtt.client_id); }

std::string AgentConfig::http_address() const {
  if (!http.address.empty()) return http.address;
  const auto endpoint = endpoint_of(mqtt.address);
  if (!endpoint) return {};
  const bool ipv6 = endpoint->host.find(':') != std::string::npos;
  return "https://" + (ipv6 ? "[" + endpoint->host + "]" : endpoint->host);
}

std::string AgentConfig::report_address() const {
  if (report.url.starts_with("https://")) return split_https_url(report.url).first;
  return split_https_url(http_address()).first;
}

std::string AgentConfig::report_path() const {
  if (report.url.starts_with("https://")) return split_https_url(report.url).second;
  std::string prefix = split_https_url(http_address()).second;
  while (prefix.ends_with('/')) prefix.pop_back();
  return prefix + (report.url.empty() ? kDefaultReportPath : report.url);
}

std::string AgentConfig::report_url() const { return report_address() + report_path(); }

CloudHttpOptions AgentConfig::http_options() const {
  CloudHttpOptions options;
  options.timeout = http.timeout;
  options.ca = http.ca.empty() ? mqtt.ca : http.ca;
  const bool own_pair = !http.cert.empty();
  options.cert = own_pair ? http.cert : mqtt.cert;
  options.key = own_pair ? http.key : mqtt.key;
  options.insecure_skip_verify = http.insecure_skip_verify;
  return options;
}

mqtt::ClientConfig AgentConfig::mqtt_client_config() const {
  mqtt::ClientConfig out = mqtt;
  out.subscriptions = {{desire_topic(), 1}};
  return out;
}

}  // namespace baetyl::agent
