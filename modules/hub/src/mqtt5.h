#pragma once
// What the hub adds to the codec for MQTT 5 clients: the properties a message carries from its
// publisher to its subscribers, and the reason codes of its answers.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "baetyl/mqtt/packet.h"

namespace baetyl::hub {

// The properties of a PUBLISH (or will) that go on to subscribers, as wire bytes without their
// Property Length: Payload Format Indicator, Content Type, Response Topic, Correlation Data and
// the User Properties in their order. Topic Alias, Message Expiry Interval (re-computed per
// delivery), Subscription Identifier and Will Delay Interval stay behind.
std::string forwarded_properties(const mqtt::Properties& properties);

// The wire bytes of `properties` without their Property Length (empty when there are none).
std::string properties_body(const mqtt::Properties& properties);

// Appends the Property Length and the properties of one delivery: `forwarded`, then the Message
// Expiry Interval when `expiry_seconds` is non-zero (the interval left), then one Subscription
// Identifier per entry of `subscription_ids`, then a Topic Alias when `topic_alias` is non-zero.
void append_delivery_properties(std::string& out, std::string_view forwarded,
                                std::uint32_t expiry_seconds,
                                std::span<const std::uint32_t> subscription_ids,
                                std::uint16_t topic_alias = 0);

// The Message Expiry Interval to send for a message expiring at `expiry` (unix ms; 0: never, and
// 0 is returned) at `now`: the seconds left, rounded up, at least 1.
inline std::uint32_t expiry_seconds_left(std::int64_t expiry, std::int64_t now) {
  if (expiry == 0) return 0;
  if (expiry <= now) return 1;
  return static_cast<std::uint32_t>((expiry - now + 999) / 1000);
}

// Whether a message expiring at `expiry` (0: never) has expired at `now`.
inline bool expired(std::int64_t expiry, std::int64_t now) { return expiry != 0 && now >= expiry; }

// `text` as a Reason String: printable ASCII (other bytes become '?', so that a client's bytes
// quoted in it stay well-formed), at most 200 characters.
std::string reason_string(std::string_view text);

// The MQTT 5 CONNACK reason code for a 3.1.1 return code.
mqtt::ReasonCode connack_reason(mqtt::ConnectReturnCode code);

// The MQTT 3.1.1 SUBACK return code for an MQTT 5 one: failures become 0x80.
inline std::uint8_t suback_v311(std::uint8_t code) { return code >= 0x80 ? 0x80 : code; }

}  // namespace baetyl::hub
