#pragma once
// The MQTT client keys of the configuration (`hub:` in every module, `remotes:` in remote-mqtt).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "baetyl/config/reader.h"
#include "baetyl/mqtt/properties.h"

namespace baetyl::mqtt {

// A topic with its QoS: `{topic: t, qos: 1}`.
struct TopicInfo {
  std::string topic;
  int qos = 0;
  // MQTT 5 subscription options, set through the API (not the configuration); with protocol
  // 3.1.1 they must keep these defaults.
  bool no_local = false;
  bool retain_as_published = false;
  int retain_handling = 0;  // 0: send retained messages, 1: only for a new subscription, 2: never
  bool operator==(const TopicInfo&) const = default;
};
void describe(config::Reader& r, TopicInfo& t);

struct ClientConfig {
  std::string address;  // tcp://host:port or ssl://host:port
  std::string username;
  std::string password;
  std::string ca;    // CA certificate that signs the server's
  std::string cert;  // client certificate, for two-way TLS
  std::string key;   // client private key
  bool insecure_skip_verify = false;  // do not verify the server certificate (tests only)
  std::string client_id;
  bool clean_session = false;
  ProtocolVersion protocol = ProtocolVersion::V311;  // `3.1.1` (or 4), `5` (or 5.0)
  // MQTT 5: the Session Expiry Interval sent with cleansession false (whole seconds, at most
  // 4294967294 s); unset: the session never expires (0xFFFFFFFF).
  std::optional<std::chrono::milliseconds> session_expiry;
  // MQTT 5: the Maximum Packet Size sent in CONNECT; unset: none (any size the protocol allows).
  std::optional<config::ByteSize> max_packet_size;
  std::chrono::milliseconds timeout = std::chrono::seconds(30);   // connect and PINGRESP timeout
  std::chrono::milliseconds interval = std::chrono::minutes(1);   // longest reconnect backoff
  std::chrono::milliseconds keepalive = std::chrono::minutes(1);  // 0 disables pings
  int buffer_size = 10;  // messages queued or in flight before publish() waits
  bool validate_subs = false;  // a refused subscription stops the client with an error
  std::vector<TopicInfo> subscriptions;
};
// Keys: address, username, password, ca, cert, key, insecureSkipVerify, clientid, cleansession,
// protocol, sessionexpiry, maxpacketsize, timeout, interval, keepalive, buffersize, validatesubs,
// subscriptions.
void describe(config::Reader& r, ClientConfig& c);

// The protocol as the configuration writes it ("3.1.1" or "5"), and back (also "4" and "5.0");
// parse_protocol() returns nullopt for anything else.
std::string protocol_name(ProtocolVersion version);
std::optional<ProtocolVersion> parse_protocol(std::string_view text);

// The Session Expiry Interval CONNECT carries: 0 with clean session, else session_expiry or
// 0xFFFFFFFF (never expires).
std::uint32_t session_expiry_interval(const ClientConfig& c);

}  // namespace baetyl::mqtt
