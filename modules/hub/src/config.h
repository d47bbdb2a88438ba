#pragma once
// The configuration of baetyl-hub (etc/baetyl/service.yml), with the defaults of the docs.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "baetyl/config/reader.h"
#include "baetyl/config/units.h"
#include "baetyl/log/logger.h"

namespace baetyl::hub {

// One entry of `listen`: tcp://host:port, ssl://host:port, ws://host:port/path,
// wss://host:port/path. An empty host (`ws://:8080/mqtt`) listens on every interface, IPv6 and
// IPv4.
struct ListenAddress {
  std::string url;
  std::string scheme;  // tcp, ssl, ws, wss
  std::string host;    // without brackets; empty: any
  std::uint16_t port = 0;
  std::string path;  // websocket path, "/" when absent

  bool tls() const { return scheme == "ssl" || scheme == "wss"; }
  bool websocket() const { return scheme == "ws" || scheme == "wss"; }
};

// Parses one listen address; throws std::invalid_argument with the reason.
ListenAddress parse_listen_address(const std::string& url);

struct Certificate {
  std::string ca;
  std::string key;
  std::string cert;
  // A client with a verified certificate and no password logs in as the principal its username
  // names, even when that is not the certificate's CN (the original's behaviour). Off: such a
  // username must be the CN (or absent).
  bool use_username_as_identity = false;
};

struct Permission {
  std::string action;               // pub or sub
  std::vector<std::string> permit;  // topic filters allowed
  std::vector<std::string> deny;    // topic filters refused even when permitted
};

struct Principal {
  std::string username;
  std::string password;  // empty: only for clients with a verified certificate
  std::vector<Permission> permissions;
};

struct RouteEnd {
  std::string topic;
  int qos = 0;
};

// A static route: messages matching source.topic are republished on target.topic.
struct Route {
  RouteEnd source;
  RouteEnd target;
};

struct MessageConfig {
  config::ByteSize length_max{32 * 1024};
  struct {
    std::size_t qos0_buffer_size = 10000;
    std::size_t qos1_buffer_size = 100;
    std::size_t qos1_batch_max = 50;
    std::chrono::milliseconds qos1_cleanup_retention = std::chrono::hours(48);
    std::chrono::milliseconds qos1_cleanup_interval = std::chrono::minutes(1);
  } ingress;
  struct {
    // The queue of one subscriber: QoS 0 messages waiting to be written (beyond: new ones are
    // dropped), and QoS 1/2 messages waiting behind the in-flight window (beyond: new ones are
    // dropped for a clean session, left in the store for a persistent one).
    std::size_t qos0_buffer_size = 10000;
    config::ByteSize qos0_buffer_bytes{8 * 1024 * 1024};
    std::size_t qos1_buffer_size = 100;  // in flight
    std::size_t qos1_queue_size = 1000;
    config::ByteSize qos1_queue_bytes{16 * 1024 * 1024};
    std::size_t qos1_batch_max = 50;
    std::chrono::milliseconds qos1_retry_interval = std::chrono::seconds(20);
  } egress;
  struct {
    std::size_t buffer_size = 10000;
    std::size_t batch_max = 100;
  } offset;
};

struct StatusConfig {
  bool logging_enable = false;
  std::chrono::milliseconds logging_interval = std::chrono::seconds(60);
};

// The hub's own topics under $SYS/broker/ (sys_topics.h), retained, every `interval`; 0: none.
struct SysConfig {
  std::chrono::milliseconds interval = std::chrono::seconds(10);
};

// How often the hub reports its stats to the master (when a master started it).
struct ReportConfig {
  std::chrono::milliseconds interval = std::chrono::minutes(1);
};

struct HubConfig {
  std::vector<std::string> listen;
  std::vector<ListenAddress> listeners;  // parsed from `listen`
  Certificate certificate;
  std::vector<Principal> principals;
  std::vector<Route> subscriptions;
  MessageConfig message;
  StatusConfig status;
  SysConfig sys;
  ReportConfig report;
  std::string storage_dir = "var/db/baetyl/data";
  std::chrono::milliseconds shutdown_timeout = std::chrono::minutes(10);
  log::LoggerConfig logger;
};

void describe(config::Reader& r, Certificate& c);
void describe(config::Reader& r, Permission& p);
void describe(config::Reader& r, Principal& p);
void describe(config::Reader& r, RouteEnd& e);
void describe(config::Reader& r, Route& route);
void describe(config::Reader& r, HubConfig& c);

// Limits of the original on topics: at most 255 bytes and 8 '/' separators.
inline constexpr std::size_t kMaxTopicLength = 255;
inline constexpr std::size_t kMaxTopicLevels = 9;

// Topics starting with `$SYS` are the hub's: clients do not publish there.
bool is_reserved_topic(std::string_view topic);

// "" when the routes are usable, else why not: two routes with the same source and target, or a
// chain of routes leading back to where it started.
std::string check_routes(const std::vector<Route>& routes);

}  // namespace baetyl::hub
