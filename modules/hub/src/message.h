#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace baetyl::hub {

// A message as the hub routes it: shared, immutable, one copy for every subscriber.
struct Message {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  std::int64_t id = 0;    // row in the store for persisted (QoS 1/2) messages, else 0
  std::int64_t time = 0;  // unix milliseconds when the hub received it
  // MQTT 5: the publisher's properties passed on to subscribers, as wire bytes without their
  // Property Length (see forwarded_properties in mqtt5.h); empty from a 3.1.1 publisher.
  std::string properties;
  std::int64_t expiry = 0;  // MQTT 5 Message Expiry: unix milliseconds when it expires; 0 never
};

using MessagePtr = std::shared_ptr<const Message>;

// A message as it arrives (its bytes still in the read buffer, say): the hub makes a shared
// Message of it only when something keeps it (a QoS 1/2 delivery, the store, the retained set).
struct MessageView {
  std::string_view topic;
  std::string_view payload;
  std::uint8_t qos = 0;
  bool retain = false;
  std::int64_t time = 0;        // unix milliseconds; 0: when the hub routes it
  std::string_view properties;  // as Message::properties
  std::int64_t expiry = 0;      // as Message::expiry
  // The session that published it (MQTT 5 No Local skips its own subscriptions), or null.
  const void* origin = nullptr;
};

// A session's subscription to one filter: its granted QoS and MQTT 5 options.
struct Subscribed {
  std::uint8_t qos = 0;
  bool no_local = false;             // not delivered what the session itself published
  bool retain_as_published = false;  // live deliveries keep the publisher's retain flag
  std::uint32_t identifier = 0;      // MQTT 5 Subscription Identifier; 0: none

  bool operator==(const Subscribed&) const = default;
};

// A session's Session Expiry Interval that never ends (MQTT 5's 0xFFFFFFFF; every 3.1.1
// persistent session).
inline constexpr std::uint32_t kNeverExpires = 0xFFFFFFFF;

std::int64_t unix_millis();

}  // namespace baetyl::hub
