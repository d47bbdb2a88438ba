// libFuzzer target: the MQTT codec on packets built in memory, as the hub and the client send
// them. The first byte picks the packet type (1..14, every type of both directions); the rest
// fills its fields, valid or not.
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
  explicit PacketMaker(FuzzedDataProvider& in) : in_(in) {}

  Packet make(PacketType type) {
    switch (type) {
      case PacketType::Connect:
        return connect();
      case PacketType::Connack:
        return Connack{in_.ConsumeBool(), static_cast<ConnectReturnCode>(small(6))};
      case PacketType::Publish: {
        Publish p;
        p.topic = text();
        p.payload = in_.ConsumeRandomLengthString(256);
        p.qos = small(3);
        p.retain = in_.ConsumeBool();
        p.dup = in_.ConsumeBool();
        p.packet_id = packet_id();
        return p;
      }
      case PacketType::Puback:
        return Puback{packet_id()};
      case PacketType::Pubrec:
        return Pubrec{packet_id()};
      case PacketType::Pubrel:
        return Pubrel{packet_id()};
      case PacketType::Pubcomp:
        return Pubcomp{packet_id()};
      case PacketType::Subscribe: {
        Subscribe s{packet_id(), {}};
        for (auto n = in_.ConsumeIntegralInRange(0, 4); n > 0; --n) {
          s.subscriptions.push_back(Subscription{text(), small(3)});
        }
        return s;
      }
      case PacketType::Suback: {
        Suback s{packet_id(), {}};
        for (auto n = in_.ConsumeIntegralInRange(0, 4); n > 0; --n) {
          s.return_codes.push_back(in_.ConsumeBool() ? small(3)
                                                     : in_.ConsumeIntegral<std::uint8_t>());
        }
        return s;
      }
      case PacketType::Unsubscribe: {
        Unsubscribe u{packet_id(), {}};
        for (auto n = in_.ConsumeIntegralInRange(0, 4); n > 0; --n)
          u.topic_filters.push_back(text());
        return u;
      }
      case PacketType::Unsuback:
        return Unsuback{packet_id()};
      case PacketType::Pingreq:
        return Pingreq{};
      case PacketType::Pingresp:
        return Pingresp{};
      case PacketType::Disconnect:
        return Disconnect{};
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
    return c;
  }

  FuzzedDataProvider& in_;
};

void check_invalid(const Packet& packet, const std::string& problem) {
  std::string out = "kept";
  try {
    encode(packet, out);
  } catch (const std::invalid_argument& e) {
    FUZZ_CHECK(e.what() == problem, std::string(e.what()) + " vs validate: " + problem);
    FUZZ_CHECK(out == "kept", "encode() wrote an invalid packet: " + hex(out));
    return;
  }
  fuzz::fail(__FILE__, __LINE__, "encode() of an invalid packet throws", problem);
}

void check_publish(const Publish& p, const std::string& wire) {
  std::string shared = "x";
  encode_publish(shared, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id);
  FUZZ_CHECK(shared == "x" + wire, hex(shared) + " vs " + hex(wire));

  const HeaderResult head = decode_fixed_header(wire);
  FUZZ_CHECK(head.status == DecodeStatus::Ok, head.error);
  PublishView view;
  const std::string error = decode_publish(wire, head.header, view);
  FUZZ_CHECK(error.empty(), error);
  FUZZ_CHECK(view.topic == p.topic && view.payload == p.payload && view.qos == p.qos &&
                 view.retain == p.retain && view.dup == p.dup && view.packet_id == p.packet_id,
             hex(wire));
}

void check_valid(const Packet& packet) {
  const std::string wire = encode(packet);
  FUZZ_CHECK(wire.size() == encoded_size(packet), hex(wire));

  const DecodeResult r = decode(wire);
  FUZZ_CHECK(r.status == DecodeStatus::Ok, r.error + "; wire " + hex(wire));
  FUZZ_CHECK(r.consumed == wire.size(), hex(wire));
  FUZZ_CHECK(r.packet == packet, "decoded differently: " + hex(wire));

  for (std::size_t n = 0; n < wire.size(); ++n) {
    const DecodeResult partial = decode(std::string_view(wire).substr(0, n));
    FUZZ_CHECK(partial.status == DecodeStatus::Incomplete && partial.consumed == 0,
               "prefix of " + std::to_string(n) + " bytes: " + partial.error);
  }

  const std::string two = wire + wire;
  const DecodeResult first = decode(two);
  FUZZ_CHECK(first.status == DecodeStatus::Ok && first.consumed == wire.size(), hex(two));

  if (const auto* p = std::get_if<Publish>(&packet)) check_publish(*p, wire);
}

}  // namespace
}  // namespace baetyl::mqtt

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace baetyl::mqtt;
  if (size == 0) return 0;
  const auto type = static_cast<PacketType>(data[0] % 14 + 1);
  FuzzedDataProvider in(data + 1, size - 1);
  const Packet packet = PacketMaker(in).make(type);
  FUZZ_CHECK(type_of(packet) == type, std::string(to_string(type)));

  const std::string problem = validate(packet);
  if (!problem.empty()) {
    FUZZ_CHECK(problem.starts_with(std::string(to_string(type)) + ": "), problem);
    check_invalid(packet, problem);
  } else {
    check_valid(packet);
  }
  return 0;
}
