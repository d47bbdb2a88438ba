#pragma once
// The MQTT client keys of the configuration (`hub:` in every module, `remotes:` in remote-mqtt).
#include <chrono>
#include <string>
#include <vector>

#include "baetyl/config/reader.h"

namespace baetyl::mqtt {

// A topic with its QoS: `{topic: t, qos: 1}`.
struct TopicInfo {
  std::string topic;
  int qos = 0;
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
  std::chrono::milliseconds timeout = std::chrono::seconds(30);   // connect and PINGRESP timeout
  std::chrono::milliseconds interval = std::chrono::minutes(1);   // longest reconnect backoff
  std::chrono::milliseconds keepalive = std::chrono::minutes(1);  // 0 disables pings
  int buffer_size = 10;  // messages queued or in flight before publish() waits
  bool validate_subs = false;  // a refused subscription stops the client with an error
  std::vector<TopicInfo> subscriptions;
};
// Keys: address, username, password, ca, cert, key, insecureSkipVerify, clientid, cleansession,
// timeout, interval, keepalive, buffersize, validatesubs, subscriptions.
void describe(config::Reader& r, ClientConfig& c);

}  // namespace baetyl::mqtt
