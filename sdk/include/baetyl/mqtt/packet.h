#pragma once
// MQTT 3.1.1 and MQTT 5 control packets as plain values. The codec (codec.h) turns them into bytes
// and back; the hub and the client both work with these types. Members marked "MQTT 5" are
// encoded and decoded only with ProtocolVersion::V5 and must keep their defaults otherwise.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "baetyl/mqtt/properties.h"

namespace baetyl::mqtt {

enum class PacketType : std::uint8_t {
  Connect = 1,
  Connack = 2,
  Publish = 3,
  Puback = 4,
  Pubrec = 5,
  Pubrel = 6,
  Pubcomp = 7,
  Subscribe = 8,
  Suback = 9,
  Unsubscribe = 10,
  Unsuback = 11,
  Pingreq = 12,
  Pingresp = 13,
  Disconnect = 14,
  Auth = 15,  // MQTT 5 only; reserved in 3.1.1
};

std::string_view to_string(PacketType type);

// CONNACK return codes (MQTT 3.1.1, 3.2.2.3).
enum class ConnectReturnCode : std::uint8_t {
  Accepted = 0,
  UnacceptableProtocolVersion = 1,
  IdentifierRejected = 2,
  ServerUnavailable = 3,
  BadUsernameOrPassword = 4,
  NotAuthorized = 5,
};

std::string_view to_string(ConnectReturnCode code);

// SUBACK return code for a refused subscription.
inline constexpr std::uint8_t kSubackFailure = 0x80;

// The largest Remaining Length the protocol can express: 268,435,455 bytes.
inline constexpr std::size_t kMaxRemainingLength = 268'435'455;

struct Will {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  Properties properties;  // MQTT 5: the will properties

  bool operator==(const Will&) const = default;
};

struct Connect {
  // "MQTT" with level 4 is MQTT 3.1.1; "MQIsdp" with level 3 is MQTT 3.1, also accepted; "MQTT"
  // with level 5 is MQTT 5. The level, not the codec's version argument, chooses the layout.
  std::string protocol_name = "MQTT";
  std::uint8_t protocol_level = 4;
  bool clean_session = true;     // Clean Start in MQTT 5
  std::uint16_t keep_alive = 0;  // seconds
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;
  Properties properties;  // MQTT 5 (level 5)

  bool operator==(const Connect&) const = default;
};

struct Connack {
  bool session_present = false;
  ConnectReturnCode return_code = ConnectReturnCode::Accepted;  // MQTT 3.1.1
  ReasonCode reason_code = ReasonCode::Success;                 // MQTT 5
  Properties properties;                                        // MQTT 5

  bool operator==(const Connack&) const = default;
};

struct Publish {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;  // non-zero exactly when qos > 0
  // MQTT 5. The topic may be empty when a Topic Alias is present. A Subscription Identifier is
  // only for server-to-client PUBLISH; the codec accepts it either way (the receiver's session
  // knows the direction).
  Properties properties;

  bool operator==(const Publish&) const = default;
};

struct Puback {
  std::uint16_t packet_id = 0;
  ReasonCode reason_code = ReasonCode::Success;  // MQTT 5
  Properties properties;                         // MQTT 5
  bool operator==(const Puback&) const = default;
};

struct Pubrec {
  std::uint16_t packet_id = 0;
  ReasonCode reason_code = ReasonCode::Success;  // MQTT 5
  Properties properties;                         // MQTT 5
  bool operator==(const Pubrec&) const = default;
};

struct Pubrel {
  std::uint16_t packet_id = 0;
  ReasonCode reason_code = ReasonCode::Success;  // MQTT 5
  Properties properties;                         // MQTT 5
  bool operator==(const Pubrel&) const = default;
};

struct Pubcomp {
  std::uint16_t packet_id = 0;
  ReasonCode reason_code = ReasonCode::Success;  // MQTT 5
  Properties properties;                         // MQTT 5
  bool operator==(const Pubcomp&) const = default;
};

struct Subscription {
  std::string topic_filter;
  std::uint8_t qos = 0;  // Maximum QoS in MQTT 5
  // MQTT 5 subscription options.
  bool no_local = false;
  bool retain_as_published = false;
  std::uint8_t retain_handling = 0;  // 0 send retained, 1 only for a new subscription, 2 never
  bool operator==(const Subscription&) const = default;
};

struct Subscribe {
  std::uint16_t packet_id = 0;
  std::vector<Subscription> subscriptions;  // at least one
  Properties properties;                    // MQTT 5
  bool operator==(const Subscribe&) const = default;
};

struct Suback {
  std::uint16_t packet_id = 0;
  // Granted QoS 0..2 or kSubackFailure; in MQTT 5 the reason codes (ReasonCode values).
  std::vector<std::uint8_t> return_codes;
  Properties properties;  // MQTT 5
  bool operator==(const Suback&) const = default;
};

struct Unsubscribe {
  std::uint16_t packet_id = 0;
  std::vector<std::string> topic_filters;  // at least one
  Properties properties;                   // MQTT 5
  bool operator==(const Unsubscribe&) const = default;
};

struct Unsuback {
  std::uint16_t packet_id = 0;
  std::vector<ReasonCode> reason_codes;  // MQTT 5: one per topic filter
  Properties properties;                 // MQTT 5
  bool operator==(const Unsuback&) const = default;
};

struct Pingreq {
  bool operator==(const Pingreq&) const = default;
};

struct Pingresp {
  bool operator==(const Pingresp&) const = default;
};

struct Disconnect {
  ReasonCode reason_code = ReasonCode::NormalDisconnection;  // MQTT 5
  Properties properties;                                     // MQTT 5
  bool operator==(const Disconnect&) const = default;
};

// MQTT 5 only: extended authentication exchange.
struct Auth {
  ReasonCode reason_code = ReasonCode::Success;
  Properties properties;
  bool operator==(const Auth&) const = default;
};

// Alternatives are in PacketType order, so packet.index() + 1 == PacketType value.
using Packet = std::variant<Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe,
                            Suback, Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

inline PacketType type_of(const Packet& packet) {
  return static_cast<PacketType>(packet.index() + 1);
}

}  // namespace baetyl::mqtt
