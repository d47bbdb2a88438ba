// libFuzzer target: the MQTT codec on packets built in memory, as the hub and the client send
// them. The first byte picks the packet type (1..15, every type of both directions) and the
// protocol version (values 0..14 MQTT 3.1.1, 15..29 MQTT 5, and so on alternately); the rest fills
// its fields, valid or not, with MQTT 5 properties, reason codes and subscription options when
// the version is 5.
//
// A packet that validate() refuses makes encode() throw std::invalid_argument with the same
// message and leave the output untouched. A valid one encodes to encoded_size() bytes that decode
// to the same packet, whose every proper prefix is Incomplete, that decode alone even when another
// packet follows, and (for PUBLISH) that encode_publish() and decode_publish() agree with.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "baetyl/mqtt/codec.h"
#include "fuzz_support.h"

namespace baetyl::mqtt {
namespace {

using fuzz::hex;

class PacketMaker {
 public:
  PacketMaker(FuzzedDataProvider& in, bool v5) : in_(in), v5_(v5) {}

  Packet make(PacketType type) {
    switch (type) {
      case PacketType::Connect:
        return connect();
      case PacketType::Connack: {
        Connack c{in_.ConsumeBool(), static_cast<ConnectReturnCode>(small(6))};
        if (v5_) {
          c.return_code = ConnectReturnCode::Accepted;
          c.reason_code = reason();
          c.properties = properties();
        }
        return c;
      }
      case PacketType::Publish: {
        Publish p;
        p.topic = text();
        p.payload = in_.ConsumeRandomLengthString(256);
        p.qos = small(3);
        p.retain = in_.ConsumeBool();
        p.dup = in_.ConsumeBool();
        p.packet_id = packet_id();
        if (v5_) p.properties = properties();
        return p;
      }
      case PacketType::Puback:
        return ack<Puback>();
      case PacketType::Pubrec:
        return ack<Pubrec>();
      case PacketType::Pubrel:
        return ack<Pubrel>();
      case PacketType::Pubcomp:
        return ack<Pubcomp>();
      case PacketType::Subscribe: {
        Subscribe s{packet_id(), {}};
        for (auto n = in_.ConsumeIntegralInRange(0, 4); n > 0; --n) {
          Subscription sub{text(), small(3)};
          if (v5_) {
            sub.no_local = in_.ConsumeBool();
            sub.retain_as_published = in_.ConsumeBool();
            sub.retain_handling = small(3);
          }
          s.subscriptions.push_back(sub);
        }
        if (v5_) s.properties = properties();
        return s;
      }
      case PacketType::Suback: {
        Suback s{packet_id(), {}};
        for (auto n = in_.ConsumeIntegralInRange(0, 4); n > 0; --n) {
          s.return_codes.push_back(in_.ConsumeBool() ? small(3)
                                                     : in_.ConsumeIntegral<std::uint8_t>());
        }
        if (v5_) s.properties = properties();
        return s;
      }
      case PacketType::Unsubscribe: {
        Unsubscribe u{packet_id(), {}};
        for (auto n = in_.ConsumeIntegralInRange(0, 4); n > 0; --n)
          u.topic_filters.push_back(text());
        if (v5_) u.properties = properties();
        return u;
      }
      case PacketType::Unsuback: {
        Unsuback u{packet_id()};
        if (v5_) {
          for (auto n = in_.ConsumeIntegralInRange(0, 4); n > 0; --n) {
            u.reason_codes.push_back(reason());
          }
          u.properties = properties();
        }
        return u;
      }
      case PacketType::Pingreq:
        return Pingreq{};
      case PacketType::Pingresp:
        return Pingresp{};
      case PacketType::Disconnect:
        return v5_ ? Disconnect{reason(), properties()} : Disconnect{};
      case PacketType::Auth:
        return Auth{reason(), properties()};
    }
    return Disconnect{};
  }

 private:
  // Mostly small values, sometimes any byte.
  std::uint8_t small(std::uint8_t max) {
    return in_.ConsumeBool() ? in_.ConsumeIntegralInRange<std::uint8_t>(0, max)
                             : in_.ConsumeIntegral<std::uint8_t>();
  }
  std::uint16_t packet_id() {
    return in_.ConsumeBool() ? in_.ConsumeIntegralInRange<std::uint16_t>(0, 3)
                             : in_.ConsumeIntegral<std::uint16_t>();
  }
  std::string text() { return in_.ConsumeRandomLengthString(64); }
  std::optional<std::string> maybe_text() {
    if (!in_.ConsumeBool()) return std::nullopt;
    return text();
  }
  ReasonCode reason() {
    constexpr std::uint8_t kCommon[] = {0x00, 0x10, 0x80, 0x81, 0x8E, 0x92, 0x18};
    if (in_.ConsumeBool()) return static_cast<ReasonCode>(in_.PickValueInArray(kCommon));
    return static_cast<ReasonCode>(in_.ConsumeIntegral<std::uint8_t>());
  }
  template <class Ack>
  Ack ack() {
    Ack a{packet_id()};
    if (v5_) {
      a.reason_code = reason();
      a.properties = properties();
    }
    return a;
  }
  // Mostly identifiers of the table with a value of their type; sometimes any identifier, value
  // or type.
  Properties properties() {
    Properties out;
    for (auto n = in_.ConsumeIntegralInRange(0, 5); n > 0; --n) {
      const auto id = in_.ConsumeBool() ? in_.ConsumeIntegralInRange<std::uint8_t>(1, 0x2A)
                                        : in_.ConsumeIntegral<std::uint8_t>();
      const auto* info = property_info(id);
      Property p{static_cast<PropertyId>(id), std::uint32_t{0}};
      const int kind = in_.ConsumeIntegralInRange(0, 3);
      const auto type = info ? info->type : PropertyType::Byte;
      const bool textual = type == PropertyType::Utf8String || type == PropertyType::BinaryData;
      if (kind == 3 || (kind != 0 && type == PropertyType::Utf8StringPair)) {
        p.value = StringPair{text(), text()};
      } else if (kind == 2 || (kind != 0 && textual)) {
        p.value = text();
      } else {
        p.value = in_.ConsumeBool() ? in_.ConsumeIntegralInRange<std::uint32_t>(0, 3)
                                    : in_.ConsumeIntegral<std::uint32_t>();
      }
      out.list.push_back(std::move(p));
    }
    return out;
  }

  Connect connect() {
    Connect c;
    switch (in_.ConsumeIntegralInRange(0, 2)) {
      case 0:
        c.protocol_name = "MQTT";
        break;
      case 1:
        c.protocol_name = "MQIsdp";
        break;
      default:
        c.protocol_name = text();
    }
    c.protocol_level = small(5);
    c.clean_session = in_.ConsumeBool();
    c.keep_alive = in_.ConsumeIntegral<std::uint16_t>();
    c.client_id = text();
    if (in_.ConsumeBool()) c.will = Will{text(), text(), small(3), in_.ConsumeBool()};
    c.username = maybe_text();
    c.password = maybe_text();
    if (v5_) {
      c.protocol_level = in_.ConsumeBool() ? 5 : c.protocol_level;
      c.properties = properties();
      if (c.will) c.will->properties = properties();
    }
    return c;
  }

  FuzzedDataProvider& in_;
  bool v5_;
};

void check_invalid(const Packet& packet, const std::string& problem, ProtocolVersion version) {
  std::string out = "kept";
  try {
    encode(packet, out, version);
  } catch (const std::invalid_argument& e) {
    FUZZ_CHECK(e.what() == problem, std::string(e.what()) + " vs validate: " + problem);
    FUZZ_CHECK(out == "kept", "encode() wrote an invalid packet: " + hex(out));
    return;
  }
  fuzz::fail(__FILE__, __LINE__, "encode() of an invalid packet throws", problem);
}

void check_publish(const Publish& p, const std::string& wire, ProtocolVersion version) {
  const bool v5 = version == ProtocolVersion::V5;
  std::string shared = "x";
  if (v5) {
    std::string properties;
    encode_properties(p.properties, properties);
    encode_publish_v5(shared, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id, properties);
  } else {
    encode_publish(shared, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id);
  }
  FUZZ_CHECK(shared == "x" + wire, hex(shared) + " vs " + hex(wire));

  const HeaderResult head = decode_fixed_header(wire, {}, version);
  FUZZ_CHECK(head.status == DecodeStatus::Ok, head.error);
  PublishView view;
  const std::string error = v5 ? decode_publish(wire, head.header, view, version).message
                               : decode_publish(wire, head.header, view);
  FUZZ_CHECK(error.empty(), error);
  FUZZ_CHECK(view.topic == p.topic && view.payload == p.payload && view.qos == p.qos &&
                 view.retain == p.retain && view.dup == p.dup && view.packet_id == p.packet_id,
             hex(wire));
}

void check_valid(const Packet& packet, ProtocolVersion version) {
  const std::string wire = encode(packet, version);
  FUZZ_CHECK(wire.size() == encoded_size(packet, version), hex(wire));

  const DecodeResult r = decode(wire, {}, version);
  FUZZ_CHECK(r.status == DecodeStatus::Ok, r.error + "; wire " + hex(wire));
  FUZZ_CHECK(r.consumed == wire.size(), hex(wire));
  FUZZ_CHECK(r.packet == packet, "decoded differently: " + hex(wire));

  for (std::size_t n = 0; n < wire.size(); ++n) {
    const DecodeResult partial = decode(std::string_view(wire).substr(0, n), {}, version);
    FUZZ_CHECK(partial.status == DecodeStatus::Incomplete && partial.consumed == 0,
               "prefix of " + std::to_string(n) + " bytes: " + partial.error);
  }

  const std::string two = wire + wire;
  const DecodeResult first = decode(two, {}, version);
  FUZZ_CHECK(first.status == DecodeStatus::Ok && first.consumed == wire.size(), hex(two));

  if (const auto* p = std::get_if<Publish>(&packet)) check_publish(*p, wire, version);
}

}  // namespace
}  // namespace baetyl::mqtt

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace baetyl::mqtt;
  if (size == 0) return 0;
  const auto type = static_cast<PacketType>(data[0] % 15 + 1);
  const bool v5 = (data[0] / 15) % 2 == 1;
  const auto version = v5 ? ProtocolVersion::V5 : ProtocolVersion::V311;
  FuzzedDataProvider in(data + 1, size - 1);
  const Packet packet = PacketMaker(in, v5).make(type);
  FUZZ_CHECK(type_of(packet) == type, std::string(to_string(type)));

  const std::string problem = validate(packet, version);
  if (!problem.empty()) {
    FUZZ_CHECK(problem.starts_with(std::string(to_string(type)) + ": "), problem);
    check_invalid(packet, problem, version);
  } else {
    check_valid(packet, version);
  }
  return 0;
}
