#pragma once
// MQTT 3.1.1 and MQTT 5 wire format: encoding of every control packet and strict, incremental
// decoding. The protocol version is an argument (a connection knows it once CONNECT is read; the
// default is 3.1.1); CONNECT itself is laid out by its own protocol level (3, 4 or 5).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "baetyl/mqtt/packet.h"

namespace baetyl::mqtt {

// Appends the wire form of `packet` to `out`. The packet must be valid for `version` (see
// validate()); encoding an invalid packet throws std::invalid_argument naming the field. MQTT 5
// short forms are used: an acknowledgement or DISCONNECT omits a Success reason code and empty
// properties, AUTH with Success and no properties has no body.
void encode(const Packet& packet, std::string& out,
            ProtocolVersion version = ProtocolVersion::V311);
std::string encode(const Packet& packet, ProtocolVersion version = ProtocolVersion::V311);

// Appends a PUBLISH made of its parts, with the same bytes as encode(Publish{...}), without
// building a Publish value first: a broker sends one shared message to many subscribers this way.
// Not validated (the caller sends what it already checked); packet_id is written only when qos > 0.
void encode_publish(std::string& out, std::string_view topic, std::string_view payload,
                    std::uint8_t qos, bool retain, bool dup, std::uint16_t packet_id);

// The MQTT 5 form: `properties` holds what encode_properties() wrote (Property Length first), or
// is empty for no properties.
void encode_publish_v5(std::string& out, std::string_view topic, std::string_view payload,
                       std::uint8_t qos, bool retain, bool dup, std::uint16_t packet_id,
                       std::string_view properties);

// The number of bytes encode() produces for `packet` (fixed header included). Does not validate.
// Compare it with the peer's MQTT 5 Maximum Packet Size before sending.
std::size_t encoded_size(const Packet& packet, ProtocolVersion version = ProtocolVersion::V311);

struct DecodeLimits {
  // Packets whose Remaining Length exceeds this are rejected before their body is buffered.
  std::size_t max_remaining_length = kMaxRemainingLength;
  // The MQTT 5 Maximum Packet Size announced to the peer: packets longer than this (fixed header
  // included) are rejected with reason Packet too large, also before their body is buffered.
  // 0 means no limit beyond max_remaining_length.
  std::size_t maximum_packet_size = 0;
};

// The fixed header: first byte and Remaining Length.
struct FixedHeader {
  PacketType type{};
  std::uint8_t flags = 0;            // low nibble of the first byte
  std::size_t remaining_length = 0;  // bytes after the fixed header
  std::size_t header_length = 0;     // 2..5 bytes
  std::size_t packet_length() const { return header_length + remaining_length; }
};

enum class DecodeStatus {
  Ok,          // `packet` holds one packet of `consumed` bytes
  Incomplete,  // more bytes are needed; nothing consumed
  Error,       // malformed, invalid or oversized; `error` says what and where
};

// With Error, `reason` is what an MQTT 5 receiver puts in its DISCONNECT (or CONNACK): Malformed
// Packet (0x81) when the bytes cannot be parsed by the specification's layout, Protocol Error
// (0x82) when they parse but break a rule, Packet too large (0x95) over a limit. It is filled in
// for 3.1.1 too, where the peer is just disconnected.
struct HeaderResult {
  DecodeStatus status = DecodeStatus::Incomplete;
  FixedHeader header;
  std::string error;
  ReasonCode reason = ReasonCode::Success;
};

struct DecodeResult {
  DecodeStatus status = DecodeStatus::Incomplete;
  Packet packet;
  std::size_t consumed = 0;
  std::string error;
  ReasonCode reason = ReasonCode::Success;
};

// Parses only the fixed header at the front of `data` (to know how many bytes to read next).
HeaderResult decode_fixed_header(std::string_view data, const DecodeLimits& limits = {},
                                 ProtocolVersion version = ProtocolVersion::V311);

// Parses one packet from the front of `data`. Never reads past the packet; a peer's bytes that
// violate the specification give Error with a message such as
// "PUBLISH: topic name must not contain wildcards ('+' or '#')".
// CONNECT is decoded by its protocol level whatever `version` says: levels 3 and 4 strictly in
// the 3.1.1 layout, level 5 strictly in the MQTT 5 layout. Another level still decodes (the
// server answers it with CONNACK code 1): its fields after the level are read best-effort, and
// when they do not follow the 3.1.1 layout only protocol_name and protocol_level are filled in.
DecodeResult decode(std::string_view data, const DecodeLimits& limits = {},
                    ProtocolVersion version = ProtocolVersion::V311);

// A PUBLISH whose topic and payload point into the bytes it was decoded from: a broker reads it
// without copying, and copies it only when it keeps the message.
struct PublishView {
  std::string_view topic;
  std::string_view payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;  // non-zero exactly when qos > 0
  // MQTT 5: the property bytes after the Property Length, already checked; decode_properties()
  // turns them into Properties.
  std::string_view properties;
};

// Decodes the PUBLISH whose fixed header decode_fixed_header() returned, from `data` holding the
// whole packet (header included), with the checks of decode(). Returns an empty string when it is
// valid, else the error as decode() words it.
std::string decode_publish(std::string_view data, const FixedHeader& header, PublishView& out);

struct DecodeError {
  ReasonCode reason = ReasonCode::Success;
  std::string message;  // empty when the packet is valid
};

// The same for `version`; with V5 the properties are checked and kept in out.properties, and
// when `parsed` is given, left there as decode_properties() makes them (so that a receiver parses
// them once; an empty list when there are none; unspecified after an error).
DecodeError decode_publish(std::string_view data, const FixedHeader& header, PublishView& out,
                           ProtocolVersion version, Properties* parsed = nullptr);

// The usual PUBLISH of a connection that publishes to one topic over and over, read with the least
// work: when its topic name is exactly `known_topic` (a topic this receiver decoded before, whose
// bytes passed the checks then) and, with V5, it has no properties, fills in `out` as
// decode_publish() would, without checking the topic again, and returns true. False for any other
// packet, which says nothing about it: decode it with decode_publish(). `known_topic` empty: false.
bool decode_known_publish(std::string_view data, const FixedHeader& header, PublishView& out,
                          ProtocolVersion version, std::string_view known_topic);

// Checks a packet against the rules the decoder enforces for `version`; returns an empty string
// when valid. Members marked MQTT 5 in packet.h must keep their defaults with V311.
std::string validate(const Packet& packet, ProtocolVersion version = ProtocolVersion::V311);

}  // namespace baetyl::mqtt
