#pragma once
// baetyl-agent's configuration: the docs' remote.mqtt, remote.http, remote.report, remote.desire
// and ota keys, with the original's defaults. Defaults are the member initialisers; the rules are
// in describe() (agent_config.cpp).
#include <chrono>
#include <string>

#include "baetyl/config/reader.h"
#include "baetyl/config/units.h"
#include "baetyl/mqtt/client_config.h"
#include "cloud_http.h"

namespace baetyl::agent {

// Where the agent sees the master's var/db/baetyl: the service mounts the volume whose path is
// var/db/baetyl here, as the original's did.
inline constexpr const char* kStoreDir = "var/db/baetyl/volumes";
// The same directory as the master names it, relative to the master's work directory.
inline constexpr const char* kMasterStoreDir = "var/db/baetyl";

struct HttpConfig {
  std::string address;  // https://host[:port]; empty: https://<host of remote.mqtt.address>
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
  std::string ca;    // empty: remote.mqtt.ca
  std::string cert;  // empty: remote.mqtt.cert (sent when the server asks for one)
  std::string key;   // empty: remote.mqtt.key
  bool insecure_skip_verify = false;
};

struct ReportConfig {
  std::string url;  // a path on remote.http.address or an https:// URL; empty: /v1/edge/info
  std::string topic = "$baidu/iot/edge/%s/core/forward";
  std::chrono::milliseconds interval = std::chrono::seconds(20);
};

struct DesireConfig {
  std::string topic = "$baidu/iot/edge/%s/core/backward";
};

struct OtaConfig {
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
  std::string log_path = std::string(kStoreDir) + "/ota.log";  // the master's ota.log
  config::ByteSize volume_max{1ULL << 30};   // a volume's zip, and its content unpacked
  std::uint64_t volume_entries_max = 65536;  // entries of a volume's zip
};

struct AgentConfig {
  mqtt::ClientConfig mqtt;
  HttpConfig http;
  ReportConfig report;
  DesireConfig desire;
  OtaConfig ota;

  // Topics with "%s" replaced by remote.mqtt.clientid.
  std::string report_topic() const;
  std::string desire_topic() const;
  // remote.http.address, or the one derived from remote.mqtt.address.
  std::string http_address() const;
  // The report URL, and its origin (https://host[:port]) and path.
  std::string report_url() const;
  std::string report_address() const;
  std::string report_path() const;
  // The cloud's HTTPS: remote.http's timeout and TLS files (remote.mqtt's where remote.http
  // gives none).
  CloudHttpOptions http_options() const;
  // The MQTT client's configuration: remote.mqtt subscribed to the desire topic at QoS 1.
  mqtt::ClientConfig mqtt_client_config() const;
};

// Keys: remote.mqtt (every key of the SDK's MQTT client; address, clientid, username, ca, cert and
// key required, an ssl:// address, no subscriptions), remote.http.{address, timeout, ca, cert,
// key, insecureSkipVerify}, remote.report.{url, topic, interval}, remote.desire.topic,
// ota.{timeout, logger.path, volume.max, volume.entries}. Files named by ca, cert and key must
// be readable.
void describe(config::Reader& r, AgentConfig& c);

// `template` with every "%s" replaced by `client_id`.
std::string expand_topic(const std::string& topic_template, const std::string& client_id);

// An https:// URL split into its origin (https://host[:port]) and the rest ("/path?query"; "/"
// when empty). Throws std::invalid_argument when `url` is not an https:// URL with a host.
std::pair<std::string, std::string> split_https_url(const std::string& url);

}  // namespace baetyl::agent
