#pragma once
// MQTT 3.1.1 wire format: encoding of every control packet and strict, incremental decoding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "baetyl/mqtt/packet.h"

namespace baetyl::mqtt {

// Appends the wire form of `packet` to `out`. The packet must be valid (see validate()); encoding
// an invalid packet throws std::invalid_argument naming the field.
void encode(const Packet& packet, std::string& out);
std::string encode(const Packet& packet);

// Appends a PUBLISH made of its parts, with the same bytes as encode(Publish{...}), without building
// a Publish value first: a broker sends one shared message to many subscribers this way. Not
// validated (the caller sends what it already checked); packet_id is written only when qos > 0.
void encode_publish(std::string& out, std::string_view topic, std::string_view payload,
                    std::uint8_t qos, bool retain, bool dup, std::uint16_t packet_id);

// The number of bytes encode() produces for `packet` (fixed header included). Does not validate.
std::size_t encoded_size(const Packet& packet);

struct DecodeLimits {
  // Packets whose Remaining Length exceeds this are rejected before their body is buffered.
  std::size_t max_remaining_length = kMaxRemainingLength;
};

// The fixed header: first byte and Remaining Length.
struct FixedHeader {
  PacketType type{};
  std::uint8_t flags = 0;             // low nibble of the first byte
  std::size_t remaining_length = 0;   // bytes after the fixed header
  std::size_t header_length = 0;      // 2..5 bytes
  std::size_t packet_length() const { return header_length + remaining_length; }
};

enum class DecodeStatus {
  Ok,          // `packet` holds one packet of `consumed` bytes
  Incomplete,  // more bytes are needed; nothing consumed
  Error,       // malformed, invalid or oversized; `error` says what and where
};

struct HeaderResult {
  DecodeStatus status = DecodeStatus::Incomplete;
  FixedHeader header;
  std::string error;
};

struct DecodeResult {
  DecodeStatus status = DecodeStatus::Incomplete;
  Packet packet;
  std::size_t consumed = 0;
  std::string error;
};

// Parses only the fixed header at the front of `data` (to know how many bytes to read next).
HeaderResult decode_fixed_header(std::string_view data, const DecodeLimits& limits = {});

// Parses one packet from the front of `data`. Never reads past the packet; a peer's bytes that
// violate the specification give Error with a message such as
// "PUBLISH: topic name must not contain wildcards ('+' or '#')".
// CONNECT with a protocol level other than 3 or 4 still decodes (the server answers it with
// CONNACK code 1): its fields after the level are read best-effort, and when they do not follow
// the 3.1.1 layout (e.g. MQTT 5 properties) only protocol_name and protocol_level are filled in.
DecodeResult decode(std::string_view data, const DecodeLimits& limits = {});

// A PUBLISH whose topic and payload point into the bytes it was decoded from: a broker reads it
// without copying, and copies it only when it keeps the message.
struct PublishView {
  std::string_view topic;
  std::string_view payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;  // non-zero exactly when qos > 0
};

// Decodes the PUBLISH whose fixed header decode_fixed_header() returned, from `data` holding the
// whole packet (header included), with the checks of decode(). Returns an empty string when it is
// valid, else the error as decode() words it.
std::string decode_publish(std::string_view data, const FixedHeader& header, PublishView& out);

// Checks a packet against the rules the decoder enforces; returns an empty string when valid.
std::string validate(const Packet& packet);

}  // namespace baetyl::mqtt
