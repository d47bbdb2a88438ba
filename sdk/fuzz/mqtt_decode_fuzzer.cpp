// libFuzzer target: the MQTT codec on bytes from a peer, in both directions (the decoder takes
// every packet type; the hub reads client packets with it, the SDK client server packets).
//
// The input is a byte stream, as read from a socket. It is decoded as MQTT 3.1.1 and again as
// MQTT 5, each time three ways that must agree:
//   - all at once, packet after packet (the reference);
//   - framed as the hub frames it (fixed header first, wait for the whole packet, PUBLISH through
//     decode_known_publish() with the last PUBLISH's topic, else decode_publish(), and everything
//     else through decode(), under a Remaining Length limit), with the bytes arriving in chunks of
//     random sizes;
//   - framed as the SDK client frames it (decode() on the growing buffer), one byte at a time.
// Every packet decoded is valid, re-encodes to bytes that decode to the same packet, and is
// refused by a Remaining Length limit one byte below its own (and, in MQTT 5, by a Maximum Packet
// Size one byte below its size, with reason Packet too large). Every MQTT 5 error carries an error
// reason code (0x80 or above). The last bytes of the input also
// choose the chunk sizes and the hub's limit (FuzzedDataProvider reads integers from the end).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "baetyl/mqtt/codec.h"
#include "fuzz_support.h"

namespace baetyl::mqtt {
namespace {

using fuzz::hex;

// What a reader makes of a stream: the packets, then either a wait for more bytes or an error.
struct Outcome {
  std::vector<Packet> packets;
  std::vector<std::string_view> wire;  // the bytes of each packet (reference only)
  DecodeStatus end = DecodeStatus::Incomplete;
  std::string error;
};

Outcome decode_all(std::string_view stream, const DecodeLimits& limits, ProtocolVersion version) {
  Outcome out;
  std::size_t offset = 0;
  for (;;) {
    const std::string_view rest = stream.substr(offset);
    DecodeResult r = decode(rest, limits, version);
    if (r.status != DecodeStatus::Ok) {
      FUZZ_CHECK(r.consumed == 0, hex(rest));
      FUZZ_CHECK((r.status == DecodeStatus::Error) == !r.error.empty(), r.error);
      FUZZ_CHECK(r.status != DecodeStatus::Error || static_cast<std::uint8_t>(r.reason) >= 0x80,
                 r.error);
      out.end = r.status;
      out.error = std::move(r.error);
      return out;
    }
    FUZZ_CHECK(r.consumed >= 2 && r.consumed <= rest.size(), hex(rest));
    FUZZ_CHECK(r.error.empty(), r.error);
    out.wire.push_back(rest.substr(0, r.consumed));
    out.packets.push_back(std::move(r.packet));
    offset += r.consumed;
  }
}

// The hub's framing (modules/hub/src/connection.cpp, Connection::read_loop).
class HubReader {
 public:
  HubReader(const DecodeLimits& limits, ProtocolVersion version)
      : limits_(limits), version_(version) {}

  void feed(std::string_view chunk) {
    if (out_.end == DecodeStatus::Error) return;  // the hub has closed the connection
    buffer_.append(chunk);
    std::size_t offset = 0;
    while (out_.end != DecodeStatus::Error) {
      const std::string_view view = std::string_view(buffer_).substr(offset);
      const HeaderResult head = decode_fixed_header(view, limits_, version_);
      if (head.status == DecodeStatus::Incomplete) break;
      if (head.status == DecodeStatus::Error) {
        stop(head.error);
        break;
      }
      const std::size_t length = head.header.packet_length();
      if (length > view.size()) break;
      offset += length;
      if (head.header.type == PacketType::Publish) {
        PublishView p;
        if (decode_known_publish(view.substr(0, length), head.header, p, version_, known_topic_)) {
          // Read as a PUBLISH to the topic accepted last, without its checks: what decode() reads.
        } else if (version_ == ProtocolVersion::V311) {
          if (auto error = decode_publish(view.substr(0, length), head.header, p); !error.empty()) {
            stop(std::move(error));
            break;
          }
        } else if (auto e = decode_publish(view.substr(0, length), head.header, p, version_);
                   !e.message.empty()) {
          stop(std::move(e.message));
          break;
        }
        known_topic_.assign(p.topic);
        Publish publish{std::string(p.topic), std::string(p.payload), p.qos, p.retain, p.dup,
                        p.packet_id};
        const auto e =
            decode_properties(p.properties, PropertyContext::Publish, publish.properties);
        FUZZ_CHECK(e.message.empty(), e.message);
        out_.packets.push_back(std::move(publish));
        continue;
      }
      DecodeResult r = decode(view.substr(0, length), limits_, version_);
      FUZZ_CHECK(r.status != DecodeStatus::Incomplete,
                 "a whole packet decoded as Incomplete: " + hex(view.substr(0, length)));
      if (r.status == DecodeStatus::Error) {
        stop(std::move(r.error));
        break;
      }
      FUZZ_CHECK(r.consumed == length, hex(view.substr(0, length)));
      out_.packets.push_back(std::move(r.packet));
    }
    buffer_.erase(0, offset);
  }

  const Outcome& outcome() const { return out_; }

 private:
  void stop(std::string error) {
    out_.end = DecodeStatus::Error;
    out_.error = std::move(error);
  }

  DecodeLimits limits_;
  ProtocolVersion version_;
  std::string buffer_;
  std::string known_topic_;  // of the last PUBLISH read (the hub: the last one it accepted)
  Outcome out_;
};

// The SDK client's framing (sdk/src/mqtt/client.cpp, read_loop): decode() on what is buffered.
class ClientReader {
 public:
  explicit ClientReader(ProtocolVersion version) : version_(version) {}

  void feed(std::string_view chunk) {
    if (out_.end == DecodeStatus::Error) return;
    buffer_.append(chunk);
    for (;;) {
      DecodeResult r = decode(std::string_view(buffer_).substr(start_), {}, version_);
      if (r.status == DecodeStatus::Incomplete) break;
      if (r.status == DecodeStatus::Error) {
        out_.end = DecodeStatus::Error;
        out_.error = std::move(r.error);
        break;
      }
      start_ += r.consumed;
      out_.packets.push_back(std::move(r.packet));
    }
  }

  const Outcome& outcome() const { return out_; }

 private:
  ProtocolVersion version_;
  std::string buffer_;
  std::size_t start_ = 0;
  Outcome out_;
};

void expect_same(const Outcome& reader, const Outcome& reference, std::string_view who,
                 std::string_view stream) {
  const std::string where = std::string(who) + " framing, stream " + hex(stream);
  FUZZ_CHECK(reader.packets.size() == reference.packets.size(),
             where + ": " + std::to_string(reader.packets.size()) + " packets instead of " +
                 std::to_string(reference.packets.size()));
  for (std::size_t i = 0; i < reader.packets.size(); ++i) {
    FUZZ_CHECK(reader.packets[i] == reference.packets[i],
               where + ": packet " + std::to_string(i) + " differs");
  }
  FUZZ_CHECK(reader.end == reference.end,
             where + ": ends differently (" + reader.error + " / " + reference.error + ")");
  FUZZ_CHECK(reader.error == reference.error,
             where + ": '" + reader.error + "' instead of '" + reference.error + "'");
}

// A decoded packet is valid, survives encode → decode, and its own Remaining Length is the
// smallest limit that admits it.
void check_packet(const Packet& packet, std::string_view wire, ProtocolVersion version) {
  const bool v5 = version == ProtocolVersion::V5;
  FUZZ_CHECK(validate(packet, version).empty(), validate(packet, version) + "; wire " + hex(wire));
  const std::string bytes = encode(packet, version);
  FUZZ_CHECK(bytes.size() == encoded_size(packet, version), hex(wire));
  const DecodeResult again = decode(bytes, {}, version);
  FUZZ_CHECK(again.status == DecodeStatus::Ok, again.error + "; wire " + hex(wire));
  FUZZ_CHECK(again.consumed == bytes.size(), hex(bytes));
  FUZZ_CHECK(again.packet == packet, "re-encoded " + hex(bytes) + " from " + hex(wire));

  const HeaderResult head = decode_fixed_header(wire, {}, version);
  FUZZ_CHECK(head.status == DecodeStatus::Ok && head.header.type == type_of(packet), hex(wire));
  FUZZ_CHECK(head.header.packet_length() == wire.size(), hex(wire));

  if (const auto* p = std::get_if<Publish>(&packet)) {
    std::string shared;
    if (v5) {
      std::string properties;
      encode_properties(p->properties, properties);
      encode_publish_v5(shared, p->topic, p->payload, p->qos, p->retain, p->dup, p->packet_id,
                        properties);
    } else {
      encode_publish(shared, p->topic, p->payload, p->qos, p->retain, p->dup, p->packet_id);
    }
    FUZZ_CHECK(shared == bytes, "encode_publish " + hex(shared) + " vs encode " + hex(bytes));
    PublishView view;
    const std::string error = v5 ? decode_publish(wire, head.header, view, version).message
                                 : decode_publish(wire, head.header, view);
    FUZZ_CHECK(error.empty(), error + "; wire " + hex(wire));
    FUZZ_CHECK(view.topic == p->topic && view.payload == p->payload && view.qos == p->qos &&
                   view.retain == p->retain && view.dup == p->dup && view.packet_id == p->packet_id,
               "decode_publish differs from decode: " + hex(wire));
  }
  const std::size_t remaining = head.header.remaining_length;
  FUZZ_CHECK(decode(wire, {.max_remaining_length = remaining}, version).status == DecodeStatus::Ok,
             hex(wire));
  if (remaining > 0) {
    const DecodeResult refused = decode(wire, {.max_remaining_length = remaining - 1}, version);
    FUZZ_CHECK(refused.status == DecodeStatus::Error, hex(wire));
    FUZZ_CHECK(refused.error.find("remaining length exceeds limit") != std::string::npos,
               refused.error);
    FUZZ_CHECK(refused.reason == ReasonCode::PacketTooLarge, refused.error);
  }
  if (v5) {
    FUZZ_CHECK(
        decode(wire, {.maximum_packet_size = wire.size()}, version).status == DecodeStatus::Ok,
        hex(wire));
    const DecodeResult refused = decode(wire, {.maximum_packet_size = wire.size() - 1}, version);
    FUZZ_CHECK(
        refused.status == DecodeStatus::Error && refused.reason == ReasonCode::PacketTooLarge,
        refused.error);
  }
}

void run(std::string_view stream, ProtocolVersion version, std::uint32_t chunk_seed,
         std::size_t max_chunk, const DecodeLimits& hub_limits) {
  const Outcome reference = decode_all(stream, {}, version);
  for (std::size_t i = 0; i < reference.packets.size(); ++i) {
    check_packet(reference.packets[i], reference.wire[i], version);
  }

  ClientReader client(version);
  for (std::size_t i = 0; i < stream.size(); ++i) client.feed(stream.substr(i, 1));
  expect_same(client.outcome(), reference, "client", stream);

  HubReader hub(hub_limits, version);
  std::minstd_rand chunks(chunk_seed);
  for (std::size_t offset = 0; offset < stream.size();) {
    const std::size_t n = std::uniform_int_distribution<std::size_t>(1, max_chunk)(chunks);
    hub.feed(stream.substr(offset, n));
    offset += n;
  }
  const Outcome hub_reference = hub_limits.max_remaining_length == kMaxRemainingLength
                                    ? reference
                                    : decode_all(stream, hub_limits, version);
  expect_same(hub.outcome(), hub_reference, "hub", stream);
}

}  // namespace
}  // namespace baetyl::mqtt

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace baetyl::mqtt;
  const std::string_view stream(reinterpret_cast<const char*>(data), size);
  FuzzedDataProvider params(data, size);
  const auto chunk_seed = params.ConsumeIntegral<std::uint32_t>();
  const auto max_chunk = params.ConsumeIntegralInRange<std::size_t>(1, 64);
  DecodeLimits hub_limits;
  if (params.ConsumeBool()) {
    hub_limits.max_remaining_length = params.ConsumeIntegralInRange<std::size_t>(0, size);
  }

  run(stream, ProtocolVersion::V311, chunk_seed, max_chunk, hub_limits);
  run(stream, ProtocolVersion::V5, chunk_seed, max_chunk, hub_limits);
  return 0;
}
