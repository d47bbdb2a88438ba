// The MQTT 5 side of the codec: properties, reason codes, the short forms and the decode rules with
// the reason code each broken rule gives.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "baetyl/mqtt/codec.h"
#include "support/wire_bytes.h"
#include "baetyl/mqtt/properties.h"

namespace baetyl::mqtt {
namespace {

using namespace std::string_literals;
using ::testing::HasSubstr;

constexpr auto kV5 = ProtocolVersion::V5;

using baetyl::testing::bytes;
using baetyl::testing::hex;

// A packet of `type_byte` whose body is `body` (Remaining Length below 128).
std::string packet(int type_byte, const std::string& body) {
  return bytes({type_byte, static_cast<int>(body.size())}) + body;
}

std::string str(std::string_view s) {
  return bytes({static_cast<int>(s.size() >> 8), static_cast<int>(s.size() & 0xFF)}) +
         std::string(s);
}

void expect_round_trip(const Packet& p) {
  SCOPED_TRACE(std::string(to_string(type_of(p))));
  ASSERT_EQ(validate(p, kV5), "");
  const std::string wire = encode(p, kV5);
  EXPECT_EQ(wire.size(), encoded_size(p, kV5));
  const DecodeResult r = decode(wire, {}, kV5);
  ASSERT_EQ(r.status, DecodeStatus::Ok) << r.error << " wire: " << hex(wire);
  EXPECT_EQ(r.consumed, wire.size());
  EXPECT_TRUE(r.packet == p) << "decoded packet differs; wire: " << hex(wire);
  for (std::size_t n = 0; n < wire.size(); ++n) {
    const DecodeResult partial = decode(std::string_view(wire).substr(0, n), {}, kV5);
    ASSERT_EQ(partial.status, DecodeStatus::Incomplete) << n << " bytes: " << partial.error;
  }
}

void expect_bytes(const Packet& p, const std::string& wire) {
  SCOPED_TRACE(std::string(to_string(type_of(p))));
  EXPECT_EQ(hex(encode(p, kV5)), hex(wire));
  const DecodeResult r = decode(wire, {}, kV5);
  ASSERT_EQ(r.status, DecodeStatus::Ok) << r.error;
  EXPECT_TRUE(r.packet == p);
}

void expect_reason(const std::string& wire, ReasonCode reason, std::string_view words,
                   const DecodeLimits& limits = {}) {
  SCOPED_TRACE(hex(wire));
  const DecodeResult r = decode(wire, limits, kV5);
  ASSERT_EQ(r.status, DecodeStatus::Error);
  EXPECT_EQ(static_cast<int>(r.reason), static_cast<int>(reason))
      << to_string(r.reason) << ": " << r.error;
  EXPECT_THAT(r.error, HasSubstr(std::string(words)));
  EXPECT_EQ(r.consumed, 0u);
}

// A valid sample value of every property, by its type.
Property sample(const PropertyInfo& info) {
  switch (info.id) {
    case PropertyId::ResponseTopic:
      return {info.id, "reply/to/me"s};
    case PropertyId::SubscriptionIdentifier:
      return {info.id, 268'435'455u};
    default:
      break;
  }
  switch (info.type) {
    case PropertyType::Byte:
      return {info.id, 1u};
    case PropertyType::TwoByteInteger:
      return {info.id, 0xBEEFu};
    case PropertyType::FourByteInteger:
      return {info.id, 0xDEADBEEFu};
    case PropertyType::VariableByteInteger:
      return {info.id, 300u};
    case PropertyType::Utf8String:
      return {info.id, "text/\xc3\xbc"s};
    case PropertyType::BinaryData:
      return {info.id, "\x00\xff\x01"s};
    case PropertyType::Utf8StringPair:
      return {info.id, StringPair{"name", "value"}};
  }
  return {};
}

// Every property `context` may carry, plus a second and third user property.
Properties every_property(PropertyContext context) {
  Properties out;
  for (int id = 0; id < 0x80; ++id) {
    const auto* info = property_info(static_cast<std::uint8_t>(id));
    if (info != nullptr && info->allowed_in(context)) out.list.push_back(sample(*info));
  }
  out.add_user("name", "second value").add_user("", "");
  return out;
}

// ----------------------------------------------------------------------------------------------
// The property table

TEST(Mqtt5Properties, TableMatchesTheSpecification) {
  int defined = 0;
  for (int id = 0; id < 256; ++id) {
    if (property_info(static_cast<std::uint8_t>(id)) != nullptr) ++defined;
  }
  EXPECT_EQ(defined, 27);
  const auto* alias = property_info(0x23);
  ASSERT_NE(alias, nullptr);
  EXPECT_EQ(alias->name, "Topic Alias");
  EXPECT_EQ(alias->type, PropertyType::TwoByteInteger);
  EXPECT_TRUE(alias->allowed_in(PropertyContext::Publish));
  EXPECT_FALSE(alias->allowed_in(PropertyContext::Will));
  const auto* delay = property_info(0x18);
  ASSERT_NE(delay, nullptr);
  EXPECT_TRUE(delay->allowed_in(PropertyContext::Will));
  EXPECT_FALSE(delay->allowed_in(PropertyContext::Connect));
  EXPECT_EQ(property_info(0x0B)->type, PropertyType::VariableByteInteger);
  EXPECT_EQ(property_info(0x26)->type, PropertyType::Utf8StringPair);
  EXPECT_EQ(property_info(0x09)->type, PropertyType::BinaryData);
  EXPECT_EQ(property_info(0x00), nullptr);
  EXPECT_EQ(property_info(0x2B), nullptr);
  EXPECT_EQ(to_string(PropertyId::MaximumPacketSize), "Maximum Packet Size");
}

TEST(Mqtt5Properties, TypedAccessors) {
  Properties p;
  p.add(PropertyId::MessageExpiryInterval, 60)
      .add(PropertyId::ContentType, "application/json")
      .add_user("a", "1")
      .add(PropertyId::SubscriptionIdentifier, 7)
      .add_user("a", "2")
      .add(PropertyId::SubscriptionIdentifier, 9);
  EXPECT_EQ(p.integer(PropertyId::MessageExpiryInterval), 60u);
  EXPECT_EQ(p.string(PropertyId::ContentType), "application/json");
  EXPECT_EQ(p.integer(PropertyId::ContentType), std::nullopt);
  EXPECT_EQ(p.integer(PropertyId::TopicAlias), std::nullopt);
  EXPECT_EQ(p.user_properties(), (std::vector<StringPair>{{"a", "1"}, {"a", "2"}}));
  EXPECT_EQ(p.subscription_identifiers(), (std::vector<std::uint32_t>{7, 9}));
}

TEST(Mqtt5ReasonCodes, NamesAndPackets) {
  EXPECT_EQ(to_string(ReasonCode::MalformedPacket), "Malformed Packet");
  EXPECT_EQ(to_string(ReasonCode::ProtocolError), "Protocol Error");
  EXPECT_EQ(to_string(ReasonCode::PacketTooLarge), "Packet too large");
  EXPECT_EQ(to_string(ReasonCode::SessionTakenOver), "Session taken over");
  EXPECT_EQ(to_string(static_cast<ReasonCode>(0x03)), "invalid reason code");
  EXPECT_TRUE(reason_code_allowed(PropertyContext::Disconnect, 0x8E));
  EXPECT_FALSE(reason_code_allowed(PropertyContext::Connack, 0x8E));
  EXPECT_TRUE(reason_code_allowed(PropertyContext::Suback, 0x02));
  EXPECT_FALSE(reason_code_allowed(PropertyContext::Puback, 0x02));
  EXPECT_TRUE(reason_code_allowed(PropertyContext::Puback, 0x10));
  EXPECT_TRUE(reason_code_allowed(PropertyContext::Pubrel, 0x92));
  EXPECT_FALSE(reason_code_allowed(PropertyContext::Puback, 0x92));
  EXPECT_TRUE(reason_code_allowed(PropertyContext::Auth, 0x18));
  EXPECT_FALSE(reason_code_allowed(PropertyContext::Auth, 0x80));
  EXPECT_TRUE(reason_code_allowed(PropertyContext::Unsuback, 0x11));
  EXPECT_TRUE(reason_code_allowed(PropertyContext::Disconnect, 0x04));
}

// ----------------------------------------------------------------------------------------------
// Round trips of every packet type with every property it may carry

TEST(Mqtt5RoundTrip, Connect) {
  Connect c;
  c.protocol_level = 5;
  c.client_id = "device-1";
  c.keep_alive = 30;
  c.clean_session = false;
  expect_round_trip(c);
  c.properties = every_property(PropertyContext::Connect);
  c.will = Will{"status/device-1", "offline", 2, true, every_property(PropertyContext::Will)};
  c.username = "user";
  c.password = "secret";
  expect_round_trip(c);
  c.username.reset();  // a password without a user name is allowed in MQTT 5
  expect_round_trip(c);
}

TEST(Mqtt5RoundTrip, Connack) {
  expect_round_trip(Connack{});
  Connack c;
  c.session_present = true;
  c.properties = every_property(PropertyContext::Connack);
  expect_round_trip(c);
  c.session_present = false;
  c.reason_code = ReasonCode::QuotaExceeded;
  expect_round_trip(c);
}

TEST(Mqtt5RoundTrip, Publish) {
  for (std::uint8_t qos : {0, 1, 2}) {
    Publish p{"a/b", "payload", qos, qos == 1, qos == 2, static_cast<std::uint16_t>(qos ? 7 : 0)};
    expect_round_trip(p);
    p.properties = every_property(PropertyContext::Publish);
    p.properties.add(PropertyId::SubscriptionIdentifier, 1);  // a server may send several
    expect_round_trip(p);
    p.topic.clear();  // an alias stands for the topic
    expect_round_trip(p);
  }
}

TEST(Mqtt5RoundTrip, Acknowledgements) {
  const auto check = [](auto ack, PropertyContext context) {
    expect_round_trip(ack);
    ack.reason_code = context == PropertyContext::Pubrel || context == PropertyContext::Pubcomp
                          ? ReasonCode::PacketIdentifierNotFound
                          : ReasonCode::NoMatchingSubscribers;
    expect_round_trip(ack);
    ack.properties = every_property(context);
    expect_round_trip(ack);
    ack.reason_code = ReasonCode::Success;
    expect_round_trip(ack);
  };
  check(Puback{5}, PropertyContext::Puback);
  check(Pubrec{5}, PropertyContext::Pubrec);
  check(Pubrel{5}, PropertyContext::Pubrel);
  check(Pubcomp{5}, PropertyContext::Pubcomp);
}

TEST(Mqtt5RoundTrip, SubscribeWithOptions) {
  Subscribe s{9, {}};
  for (std::uint8_t rh = 0; rh <= 2; ++rh) {
    for (int bits = 0; bits < 4; ++bits) {
      Subscription sub{"a/+/c", static_cast<std::uint8_t>(bits % 3)};
      sub.no_local = bits & 1;
      sub.retain_as_published = bits & 2;
      sub.retain_handling = rh;
      s.subscriptions.push_back(sub);
    }
  }
  s.subscriptions.push_back(Subscription{"$share/group/x/#", 1});
  expect_round_trip(s);
  s.properties = every_property(PropertyContext::Subscribe);
  expect_round_trip(s);
}

TEST(Mqtt5RoundTrip, SubackUnsubscribeUnsuback) {
  Suback s{9, {0x00, 0x01, 0x02, 0x80, 0x8F, 0x97, 0x9E, 0xA1, 0xA2}};
  expect_round_trip(s);
  s.properties = every_property(PropertyContext::Suback);
  expect_round_trip(s);
  Unsubscribe u{4, {"a/#", "$share/g/b"}};
  expect_round_trip(u);
  u.properties = every_property(PropertyContext::Unsubscribe);
  expect_round_trip(u);
  Unsuback ua{4, {ReasonCode::Success, ReasonCode::NoSubscriptionExisted}};
  expect_round_trip(ua);
  ua.properties = every_property(PropertyContext::Unsuback);
  expect_round_trip(ua);
}

TEST(Mqtt5RoundTrip, DisconnectAuthPing) {
  expect_round_trip(Disconnect{});
  expect_round_trip(Disconnect{ReasonCode::SessionTakenOver});
  expect_round_trip(
      Disconnect{ReasonCode::ServerMoved, every_property(PropertyContext::Disconnect)});
  expect_round_trip(Auth{});
  expect_round_trip(
      Auth{ReasonCode::ContinueAuthentication, every_property(PropertyContext::Auth)});
  Properties method;
  method.add(PropertyId::AuthenticationMethod, "SCRAM-SHA-1");
  expect_round_trip(Auth{ReasonCode::ReAuthenticate, method});
  expect_round_trip(Pingreq{});
  expect_round_trip(Pingresp{});
}

// ----------------------------------------------------------------------------------------------
// Byte-exact packets written from the specification's text

TEST(Mqtt5Bytes, ConnectOfTheSpecificationsExample) {
  // 3.1.2.12, Figure 3-6: "MQTT", version 5, flags 0xCE (user name, password, will QoS 1, will,
  // clean start), keep alive 10, properties: Session Expiry Interval (17) = 10.
  Connect c;
  c.protocol_level = 5;
  c.clean_session = true;
  c.keep_alive = 10;
  c.properties.add(PropertyId::SessionExpiryInterval, 10);
  c.client_id = "c1";
  c.will = Will{"w", "m", 1, false};
  c.username = "u";
  c.password = "p";
  const std::string body = bytes({0, 4, 'M', 'Q', 'T', 'T', 5, 0xCE, 0, 10, 5, 17, 0, 0, 0, 10}) +
                           str("c1") + bytes({0}) + str("w") + str("m") + str("u") + str("p");
  expect_bytes(c, packet(0x10, body));
}

TEST(Mqtt5Bytes, ConnackWithProperties) {
  // 3.2.2: flags, reason code, Property Length 7: Topic Alias Maximum (34) = 10, Assigned Client
  // Identifier (18) = "x".
  Connack c;
  c.properties.add(PropertyId::TopicAliasMaximum, 10)
      .add(PropertyId::AssignedClientIdentifier, "x");
  expect_bytes(c, bytes({0x20, 10, 0, 0, 7, 0x22, 0, 10, 0x12, 0, 1, 'x'}));
}

TEST(Mqtt5Bytes, PublishWithTopicAliasAndUserProperty) {
  Publish p{"", "hi", 0, false, false, 0};
  p.properties.add(PropertyId::TopicAlias, 1);
  expect_bytes(p, bytes({0x30, 8, 0, 0, 3, 0x23, 0, 1, 'h', 'i'}));
  Publish q{"t", "", 1, false, false, 2};
  q.properties.add_user("k", "v");
  expect_bytes(q, bytes({0x32, 13, 0, 1, 't', 0, 2, 7, 0x26, 0, 1, 'k', 0, 1, 'v'}));
}

TEST(Mqtt5Bytes, AcknowledgementShortForms) {
  // 3.4.2.1: the reason code 0 and no properties may be left out (Remaining Length 2); a reason
  // code without properties leaves out the Property Length (Remaining Length 3).
  expect_bytes(Puback{1}, bytes({0x40, 2, 0, 1}));
  expect_bytes(Puback{1, ReasonCode::NoMatchingSubscribers}, bytes({0x40, 3, 0, 1, 0x10}));
  Puback with_string{1, ReasonCode::NoMatchingSubscribers};
  with_string.properties.add(PropertyId::ReasonString, "x");
  expect_bytes(with_string, bytes({0x40, 8, 0, 1, 0x10, 4, 0x1F, 0, 1, 'x'}));
  expect_bytes(Pubrel{3, ReasonCode::PacketIdentifierNotFound}, bytes({0x62, 3, 0, 3, 0x92}));
  // A full form with reason 0 and a Property Length of 0 decodes to the same packet.
  const DecodeResult r = decode(bytes({0x50, 4, 0, 1, 0, 0}), {}, kV5);
  ASSERT_EQ(r.status, DecodeStatus::Ok) << r.error;
  EXPECT_TRUE(r.packet == Packet(Pubrec{1}));
}

TEST(Mqtt5Bytes, PlainAcknowledgementsAreTheSameBytesInBothVersions) {
  // Success without properties is written and read without the checks: the same bytes as
  // 3.1.1, which decode back in both versions; packet identifier 0 is still refused both ways.
  const std::vector<std::pair<Packet, std::string>> acks = {
      {Puback{0x1234}, bytes({0x40, 2, 0x12, 0x34})},
      {Pubrec{7}, bytes({0x50, 2, 0, 7})},
      {Pubrel{0xFF01}, bytes({0x62, 2, 0xFF, 0x01})},
      {Pubcomp{1}, bytes({0x70, 2, 0, 1})}};
  for (const auto& [ack, wire] : acks) {
    const std::string v311 = encode(ack, ProtocolVersion::V311);
    EXPECT_EQ(hex(v311), hex(wire));
    EXPECT_EQ(hex(encode(ack, kV5)), hex(wire));
    for (auto version : {ProtocolVersion::V311, kV5}) {
      const DecodeResult r = decode(v311, {}, version);
      ASSERT_EQ(r.status, DecodeStatus::Ok) << r.error;
      EXPECT_TRUE(r.packet == ack);
    }
  }
  for (auto version : {ProtocolVersion::V311, kV5}) {
    std::string out = "keep";
    EXPECT_THROW(encode(Pubrel{0}, out, version), std::invalid_argument);
    EXPECT_EQ(out, "keep");
    const DecodeResult zero = decode(bytes({0x40, 2, 0, 0}), {}, version);
    EXPECT_EQ(zero.status, DecodeStatus::Error);
    EXPECT_THAT(zero.error, HasSubstr("packet identifier must be non-zero"));
  }
}

TEST(Mqtt5Bytes, DisconnectAndAuthShortForms) {
  // 3.14.2.1: Remaining Length 0 is Normal disconnection; 3.15.2.1: AUTH likewise is Success.
  expect_bytes(Disconnect{}, bytes({0xE0, 0}));
  expect_bytes(Disconnect{ReasonCode::SessionTakenOver}, bytes({0xE0, 1, 0x8E}));
  Disconnect d;
  d.properties.add(PropertyId::SessionExpiryInterval, 0);
  expect_bytes(d, bytes({0xE0, 7, 0, 5, 0x11, 0, 0, 0, 0}));
  expect_bytes(Auth{}, bytes({0xF0, 0}));
  Auth a{ReasonCode::ContinueAuthentication};
  a.properties.add(PropertyId::AuthenticationMethod, "SCRAM");
  expect_bytes(a, bytes({0xF0, 10, 0x18, 8, 0x15, 0, 5, 'S', 'C', 'R', 'A', 'M'}));
}

TEST(Mqtt5Bytes, SubscribeOptionsByte) {
  // 3.8.3.1: bits 0-1 Maximum QoS, 2 No Local, 3 Retain As Published, 4-5 Retain Handling.
  Subscription sub{"a/b", 1};
  sub.no_local = true;
  sub.retain_as_published = true;
  sub.retain_handling = 2;
  Subscribe s{10, {sub}};
  s.properties.add(PropertyId::SubscriptionIdentifier, 5);
  expect_bytes(s, bytes({0x82, 11, 0, 10, 2, 0x0B, 5, 0, 3, 'a', '/', 'b', 0x2D}));
  expect_bytes(Suback{10, {0x01}}, bytes({0x90, 4, 0, 10, 0, 0x01}));
  expect_bytes(Unsuback{10, {ReasonCode::NoSubscriptionExisted}}, bytes({0xB0, 4, 0, 10, 0, 0x11}));
  expect_bytes(Unsubscribe{10, {"a"}}, bytes({0xA2, 6, 0, 10, 0, 0, 1, 'a'}));
}

TEST(Mqtt5Bytes, SubscriptionIdentifierIsAVariableByteInteger) {
  Subscribe s{1, {Subscription{"t", 0}}};
  s.properties.add(PropertyId::SubscriptionIdentifier, 16'384);  // 1.5.5: 0x80 0x80 0x01
  expect_bytes(s, bytes({0x82, 11, 0, 1, 4, 0x0B, 0x80, 0x80, 0x01, 0, 1, 't', 0}));
}

// ----------------------------------------------------------------------------------------------
// Decode rules and their reason codes

TEST(Mqtt5DecodeRules, PropertyInTheWrongPacketIsMalformed) {
  // 2.2.2.2: an identifier not valid for the packet type is a Malformed Packet.
  expect_reason(bytes({0x40, 7, 0, 1, 0, 3, 0x23, 0, 1}), ReasonCode::MalformedPacket,
                "Topic Alias is not allowed in PUBACK");
  // Will Delay Interval belongs to the will properties, not to CONNECT.
  const std::string body =
      bytes({0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 0, 5, 0x18, 0, 0, 0, 1}) + str("id");
  expect_reason(packet(0x10, body), ReasonCode::MalformedPacket,
                "Will Delay Interval is not allowed in CONNECT");
  expect_reason(bytes({0x30, 6, 0, 1, 't', 2, 0x13, 0, 0}), ReasonCode::MalformedPacket,
                "Server Keep Alive is not allowed in PUBLISH");
}

TEST(Mqtt5DecodeRules, UnknownPropertyIsMalformed) {
  expect_reason(bytes({0x30, 6, 0, 1, 't', 2, 0x7F, 0}), ReasonCode::MalformedPacket,
                "unknown property identifier 127");
}

TEST(Mqtt5DecodeRules, DuplicatePropertyIsAProtocolError) {
  expect_reason(bytes({0x30, 14, 0, 1, 't', 10, 2, 0, 0, 0, 1, 2, 0, 0, 0, 2}),
                ReasonCode::ProtocolError, "Message Expiry Interval (PUBLISH) must not appear");
  // Subscription Identifier may repeat in a PUBLISH, not in a SUBSCRIBE.
  const DecodeResult ok = decode(bytes({0x30, 8, 0, 1, 't', 4, 0x0B, 1, 0x0B, 2}), {}, kV5);
  ASSERT_EQ(ok.status, DecodeStatus::Ok) << ok.error;
  EXPECT_EQ(std::get<Publish>(ok.packet).properties.subscription_identifiers(),
            (std::vector<std::uint32_t>{1, 2}));
  expect_reason(bytes({0x82, 11, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, 't', 0}),
                ReasonCode::ProtocolError, "Subscription Identifier (SUBSCRIBE) must not appear");
  // User properties repeat and keep their order.
  const DecodeResult users = decode(
      bytes({0x30, 17, 0, 1, 't', 13, 0x26, 0, 1, 'b', 0, 0, 0x26, 0, 1, 'a', 0, 1, 'x'}), {}, kV5);
  ASSERT_EQ(users.status, DecodeStatus::Ok) << users.error;
  EXPECT_EQ(std::get<Publish>(users.packet).properties.user_properties(),
            (std::vector<StringPair>{{"b", ""}, {"a", "x"}}));
}

TEST(Mqtt5DecodeRules, BadReasonCodeForThePacket) {
  expect_reason(bytes({0x40, 3, 0, 1, 0x8F}), ReasonCode::ProtocolError,
                "reason code 0x8f is not allowed in PUBACK");
  expect_reason(bytes({0x70, 3, 0, 1, 0x10}), ReasonCode::ProtocolError, "PUBCOMP");
  expect_reason(bytes({0xE0, 1, 0x01}), ReasonCode::ProtocolError, "DISCONNECT");
  expect_reason(bytes({0xF0, 2, 0x87, 0}), ReasonCode::ProtocolError, "AUTH");
  expect_reason(bytes({0x20, 3, 0, 0x8E, 0}), ReasonCode::ProtocolError, "CONNACK");
  expect_reason(bytes({0x90, 4, 0, 1, 0, 0x03}), ReasonCode::ProtocolError, "SUBACK");
  expect_reason(bytes({0xB0, 4, 0, 1, 0, 0x01}), ReasonCode::ProtocolError, "UNSUBACK");
  expect_reason(bytes({0x20, 3, 1, 0x80, 0}), ReasonCode::ProtocolError, "session present");
}

TEST(Mqtt5DecodeRules, ReservedBitsAreMalformed) {
  // 3.8.3.1: reserved bits 6-7 of the subscription options.
  expect_reason(bytes({0x82, 7, 0, 1, 0, 0, 1, 't', 0x40}), ReasonCode::MalformedPacket,
                "reserved bits of the subscription options");
  // Retain Handling 3 is a Protocol Error; Maximum QoS 3 too.
  expect_reason(bytes({0x82, 7, 0, 1, 0, 0, 1, 't', 0x30}), ReasonCode::ProtocolError,
                "retain handling 3");
  expect_reason(bytes({0x82, 7, 0, 1, 0, 0, 1, 't', 0x03}), ReasonCode::ProtocolError,
                "requested QoS 3");
  // Reserved connect flag, fixed header flags.
  const std::string body = bytes({0, 4, 'M', 'Q', 'T', 'T', 5, 0x03, 0, 0, 0}) + str("id");
  expect_reason(packet(0x10, body), ReasonCode::MalformedPacket, "reserved connect flag");
  expect_reason(bytes({0x41, 2, 0, 1}), ReasonCode::MalformedPacket, "reserved fixed header");
  expect_reason(bytes({0xF1, 0}), ReasonCode::MalformedPacket, "reserved fixed header");
  expect_reason(bytes({0x36, 4, 0, 1, 't', 0}), ReasonCode::MalformedPacket, "QoS 3");
  expect_reason(bytes({0x38, 4, 0, 1, 't', 0}), ReasonCode::MalformedPacket, "DUP");
}

TEST(Mqtt5DecodeRules, PropertyValues) {
  // Topic Alias 0, Receive Maximum 0, Maximum Packet Size 0, Subscription Identifier 0.
  expect_reason(bytes({0x30, 7, 0, 1, 't', 3, 0x23, 0, 0}), ReasonCode::ProtocolError,
                "Topic Alias (PUBLISH) must not be 0");
  expect_reason(bytes({0x82, 9, 0, 1, 2, 0x0B, 0, 0, 1, 't', 0}), ReasonCode::ProtocolError,
                "Subscription Identifier (SUBSCRIBE) must not be 0");
  expect_reason(bytes({0x20, 6, 0, 0, 3, 0x21, 0, 0}), ReasonCode::ProtocolError,
                "Receive Maximum (CONNACK) must not be 0");
  expect_reason(bytes({0x20, 8, 0, 0, 5, 0x27, 0, 0, 0, 0}), ReasonCode::ProtocolError,
                "Maximum Packet Size (CONNACK) must not be 0");
  // Byte flags are 0 or 1.
  expect_reason(bytes({0x30, 6, 0, 1, 't', 2, 0x01, 2}), ReasonCode::ProtocolError,
                "Payload Format Indicator (PUBLISH) must be 0 or 1");
  expect_reason(bytes({0x20, 5, 0, 0, 2, 0x24, 2}), ReasonCode::ProtocolError, "Maximum QoS");
  // Ill-formed UTF-8 and U+0000 in a string property are malformed.
  expect_reason(bytes({0x30, 9, 0, 1, 't', 5, 0x03, 0, 2, 0xC3, 0x28}), ReasonCode::MalformedPacket,
                "Content Type (PUBLISH) is not valid UTF-8");
  expect_reason(bytes({0x30, 8, 0, 1, 't', 4, 0x03, 0, 1, 0}), ReasonCode::MalformedPacket,
                "U+0000");
  expect_reason(bytes({0x30, 10, 0, 1, 't', 6, 0x26, 0, 1, 0xFF, 0, 0}),
                ReasonCode::MalformedPacket, "User Property (PUBLISH) is not valid UTF-8");
  // Binary data may hold anything.
  EXPECT_EQ(decode(bytes({0x30, 9, 0, 1, 't', 5, 0x09, 0, 2, 0xFF, 0}), {}, kV5).status,
            DecodeStatus::Ok);
  // A response topic is a topic name.
  expect_reason(bytes({0x30, 9, 0, 1, 't', 5, 0x08, 0, 2, 'a', '#'}), ReasonCode::ProtocolError,
                "wildcards");
  // Authentication Data needs an Authentication Method.
  expect_reason(bytes({0xF0, 5, 0x18, 3, 0x16, 0, 0}), ReasonCode::ProtocolError,
                "Authentication Data requires an Authentication Method");
  expect_reason(bytes({0xF0, 2, 0x18, 0}), ReasonCode::ProtocolError,
                "Authentication Method is required");
}

TEST(Mqtt5DecodeRules, TopicNameAndAlias) {
  // An empty topic is allowed with a Topic Alias only (3.3.2.1, 3.3.4).
  expect_reason(bytes({0x30, 3, 0, 0, 0}), ReasonCode::ProtocolError,
                "must not be empty without a Topic Alias");
  expect_reason(bytes({0x30, 4, 0, 1, '+', 0}), ReasonCode::ProtocolError, "wildcards");
  expect_reason(bytes({0x30, 4, 0, 1, 0x80, 0}), ReasonCode::MalformedPacket, "UTF-8");
  expect_reason(bytes({0x32, 6, 0, 1, 't', 0, 0, 0}), ReasonCode::ProtocolError,
                "packet identifier must be non-zero");
}

TEST(Mqtt5DecodeRules, VariableByteIntegersOfMoreThanFourBytes) {
  expect_reason(bytes({0x30, 9, 0, 1, 't', 0x80, 0x80, 0x80, 0x80, 0x01, 0}),
                ReasonCode::MalformedPacket, "properties length is a malformed Variable Byte");
  expect_reason(bytes({0x30, 10, 0, 1, 't', 6, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01}),
                ReasonCode::MalformedPacket, "Subscription Identifier (PUBLISH) is a malformed");
  expect_reason(bytes({0x30, 0x80, 0x80, 0x80, 0x80, 0x01}), ReasonCode::MalformedPacket,
                "malformed remaining length");
}

TEST(Mqtt5DecodeRules, TruncatedProperties) {
  // Property Length beyond the packet.
  expect_reason(bytes({0x30, 6, 0, 1, 't', 5, 0x23, 0}), ReasonCode::MalformedPacket,
                "properties runs past the end of the packet");
  // A value cut by the Property Length.
  expect_reason(bytes({0x30, 7, 0, 1, 't', 2, 0x23, 0, 'x'}), ReasonCode::MalformedPacket,
                "Topic Alias (PUBLISH) runs past the end of the properties");
  expect_reason(bytes({0x30, 8, 0, 1, 't', 4, 0x26, 0, 1, 'k'}), ReasonCode::MalformedPacket,
                "User Property (PUBLISH) runs past the end");
  // No Property Length where one is required.
  expect_reason(bytes({0x30, 3, 0, 1, 't'}), ReasonCode::MalformedPacket,
                "properties length runs past the end");
  expect_reason(bytes({0x20, 2, 0, 0}), ReasonCode::MalformedPacket, "properties length");
  expect_reason(bytes({0x90, 2, 0, 1}), ReasonCode::MalformedPacket, "properties length");
}

TEST(Mqtt5DecodeRules, PayloadRules) {
  expect_reason(bytes({0x82, 3, 0, 1, 0}), ReasonCode::ProtocolError, "at least one topic filter");
  expect_reason(bytes({0xA2, 3, 0, 1, 0}), ReasonCode::ProtocolError, "at least one topic filter");
  expect_reason(bytes({0xB0, 3, 0, 1, 0}), ReasonCode::ProtocolError, "at least one reason code");
  expect_reason(bytes({0x90, 3, 0, 1, 0}), ReasonCode::ProtocolError, "at least one return code");
  expect_reason(bytes({0xC0, 1, 0}), ReasonCode::MalformedPacket, "remaining length must be 0");
  expect_reason(bytes({0x40, 1, 0}), ReasonCode::MalformedPacket, "packet identifier");
  expect_reason(bytes({0xE0, 3, 0, 0, 0}), ReasonCode::MalformedPacket, "left over");
}

TEST(Mqtt5DecodeRules, SharedSubscriptions) {
  const auto subscribe = [](std::string_view filter, int options) {
    return packet(0x82, bytes({0, 1, 0}) + str(filter) + bytes({options}));
  };
  EXPECT_EQ(decode(subscribe("$share/g/a/+", 1), {}, kV5).status, DecodeStatus::Ok);
  expect_reason(subscribe("$share/g/a", 0x04), ReasonCode::ProtocolError,
                "no local must be 0 on a shared subscription");
  expect_reason(subscribe("$share//a", 0), ReasonCode::ProtocolError, "share name");
  expect_reason(subscribe("$share/+/a", 0), ReasonCode::ProtocolError, "share name");
  expect_reason(subscribe("$share/#", 0), ReasonCode::ProtocolError, "share name");
  expect_reason(subscribe("$share/g+/a", 0), ReasonCode::ProtocolError, "wildcard '+'");
  expect_reason(subscribe("$share/g", 0), ReasonCode::ProtocolError, "needs a topic filter");
  expect_reason(subscribe("$share/g/", 0), ReasonCode::ProtocolError, "needs a topic filter");
}

TEST(Mqtt5DecodeRules, Connect) {
  const auto connect = [](int flags, const std::string& rest, std::string_view name = "MQTT") {
    return packet(0x10, str(name) + bytes({5, flags, 0, 60}) + rest);
  };
  EXPECT_EQ(decode(connect(0x02, bytes({0}) + str("id"))).status, DecodeStatus::Ok);
  // The protocol name decides nothing about the version, and a wrong one is refused.
  expect_reason(connect(0x02, bytes({0}) + str("id"), "MQTX"),
                ReasonCode::UnsupportedProtocolVersion, "protocol name");
  expect_reason(connect(0x02, bytes({0}) + str("id"), "MQIsdp"),
                ReasonCode::UnsupportedProtocolVersion, "\"MQTT\" with protocol level 5");
  expect_reason(connect(0x02, str("id")), ReasonCode::MalformedPacket, "client identifier");
  expect_reason(connect(0x02, bytes({0}) + str("\xC0\x80")), ReasonCode::MalformedPacket,
                "client identifier is not valid UTF-8");
  expect_reason(connect(0x1E, bytes({0}) + str("id") + bytes({0}) + str("w") + str("m")),
                ReasonCode::MalformedPacket, "will QoS 3");
  expect_reason(connect(0x08, bytes({0}) + str("id")), ReasonCode::MalformedPacket,
                "will QoS and will retain flags must be 0");
  expect_reason(connect(0x06, bytes({0}) + str("id") + bytes({2, 0x23, 0}) + str("w") + str("m")),
                ReasonCode::MalformedPacket, "Topic Alias is not allowed in will properties");
  expect_reason(connect(0x06, bytes({0}) + str("id") + bytes({0}) + str("w/#") + str("m")),
                ReasonCode::ProtocolError, "will topic name");
  expect_reason(connect(0x06, bytes({0}) + str("id") + bytes({5})), ReasonCode::MalformedPacket,
                "will properties runs past the end");
}

TEST(Mqtt5DecodeRules, PacketTooLarge) {
  const std::string wire = encode(Publish{"t", std::string(100, 'x'), 0, false, false, 0}, kV5);
  DecodeLimits limits;
  limits.maximum_packet_size = wire.size() - 1;
  expect_reason(wire, ReasonCode::PacketTooLarge, "exceeds the Maximum Packet Size", limits);
  // Decided from the fixed header alone, before the body arrives.
  const HeaderResult head = decode_fixed_header(wire.substr(0, 2), limits, kV5);
  EXPECT_EQ(head.status, DecodeStatus::Error);
  EXPECT_EQ(head.reason, ReasonCode::PacketTooLarge);
  limits.maximum_packet_size = wire.size();
  EXPECT_EQ(decode(wire, limits, kV5).status, DecodeStatus::Ok);
  DecodeLimits remaining;
  remaining.max_remaining_length = 10;
  expect_reason(wire, ReasonCode::PacketTooLarge, "remaining length exceeds limit", remaining);
}

TEST(Mqtt5DecodeRules, AuthIsReservedIn311) {
  const DecodeResult r = decode(bytes({0xF0, 0}));
  ASSERT_EQ(r.status, DecodeStatus::Error);
  EXPECT_THAT(r.error, HasSubstr("packet type 15"));
  EXPECT_EQ(decode(bytes({0xF0, 0}), {}, kV5).status, DecodeStatus::Ok);
}

// ----------------------------------------------------------------------------------------------
// Versions: 3.1.1 packets stay as they were; MQTT 5 members need version 5

TEST(Mqtt5Versions, V5FieldsAreRefusedIn311) {
  Publish p{"t", "x", 0, false, false, 0};
  p.properties.add(PropertyId::MessageExpiryInterval, 5);
  EXPECT_THAT(validate(p), HasSubstr("properties require MQTT 5"));
  EXPECT_THROW(encode(p), std::invalid_argument);
  EXPECT_EQ(validate(p, kV5), "");
  EXPECT_THAT(validate(Puback{1, ReasonCode::NoMatchingSubscribers}), HasSubstr("MQTT 5"));
  EXPECT_THAT(validate(Disconnect{ReasonCode::ServerBusy}), HasSubstr("MQTT 5"));
  EXPECT_THAT(validate(Auth{}), HasSubstr("AUTH requires MQTT 5"));
  Subscription sub{"t", 0};
  sub.no_local = true;
  EXPECT_THAT(validate(Subscribe{1, {sub}}), HasSubstr("subscription options require MQTT 5"));
  EXPECT_THAT(validate(Unsuback{1, {ReasonCode::Success}}), HasSubstr("MQTT 5"));
  Connect c;
  c.client_id = "x";
  c.properties.add(PropertyId::ReceiveMaximum, 5);
  EXPECT_THAT(validate(c), HasSubstr("properties require protocol level 5"));
  c.protocol_level = 5;
  EXPECT_EQ(validate(c), "");
  // The 3.1.1 return code has no place in an MQTT 5 CONNACK.
  EXPECT_THAT(validate(Connack{false, ConnectReturnCode::NotAuthorized}, kV5),
              HasSubstr("reason_code"));
}

TEST(Mqtt5Versions, SamePacketDifferentBytes) {
  const Publish p{"t", "x", 1, false, false, 1};
  EXPECT_EQ(hex(encode(p)), hex(bytes({0x32, 6, 0, 1, 't', 0, 1, 'x'})));
  EXPECT_EQ(hex(encode(p, kV5)), hex(bytes({0x32, 7, 0, 1, 't', 0, 1, 0, 'x'})));
  // A 3.1.1 PUBLISH read as MQTT 5 takes the payload's first byte as the Property Length.
  EXPECT_EQ(decode(encode(Publish{"t", "\x05", 0, false, false, 0}), {}, kV5).status,
            DecodeStatus::Error);
  EXPECT_EQ(hex(encode(Unsuback{1})), hex(bytes({0xB0, 2, 0, 1})));
  EXPECT_EQ(decode(bytes({0xB0, 2, 0, 1}), {}, kV5).status, DecodeStatus::Error);
}

// ----------------------------------------------------------------------------------------------
// The broker's zero-copy path

TEST(Mqtt5PublishView, AgreesWithDecodeAndKeepsThePropertyBytes) {
  Publish p{"a/b", "payload", 1, true, false, 3};
  p.properties.add(PropertyId::MessageExpiryInterval, 60).add_user("k", "v");
  const std::string wire = encode(p, kV5);
  const HeaderResult head = decode_fixed_header(wire, {}, kV5);
  ASSERT_EQ(head.status, DecodeStatus::Ok);
  PublishView view;
  const DecodeError e = decode_publish(wire, head.header, view, kV5);
  ASSERT_EQ(e.message, "");
  EXPECT_EQ(view.topic, "a/b");
  EXPECT_EQ(view.payload, "payload");
  EXPECT_EQ(view.packet_id, 3);
  Properties parsed;
  ASSERT_EQ(decode_properties(view.properties, PropertyContext::Publish, parsed).message, "");
  EXPECT_TRUE(parsed == p.properties);

  // encode_publish_v5 with the same property bytes writes the same packet.
  std::string props;
  encode_properties(p.properties, props);
  std::string out;
  encode_publish_v5(out, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id, props);
  EXPECT_EQ(hex(out), hex(wire));
  std::string none;
  encode_publish_v5(none, "t", "x", 0, false, false, 0, "");
  EXPECT_EQ(hex(none), hex(encode(Publish{"t", "x", 0, false, false, 0}, kV5)));

  // Errors carry the reason code.
  const std::string bad = bytes({0x30, 7, 0, 1, 't', 3, 0x23, 0, 0});
  const HeaderResult bad_head = decode_fixed_header(bad, {}, kV5);
  const DecodeError bad_error = decode_publish(bad, bad_head.header, view, kV5);
  EXPECT_EQ(bad_error.reason, ReasonCode::ProtocolError);
  EXPECT_THAT(bad_error.message, HasSubstr("Topic Alias"));
  const std::string wild = bytes({0x30, 3, 0, 1, '#'});
  const DecodeError v311 =
      decode_publish(wild, decode_fixed_header(wild).header, view, ProtocolVersion::V311);
  EXPECT_EQ(v311.reason, ReasonCode::ProtocolError);
  EXPECT_THAT(v311.message, HasSubstr("wildcards"));
}

TEST(Mqtt5PublishView, ParsesThePropertiesOnceIntoAReusedList) {
  Publish p{"a/b", "payload", 0, false, false, 0};
  p.properties.add(PropertyId::ContentType, "text/plain").add_user("key", "a value longer than 15");
  const std::string wire = encode(p, kV5);
  const HeaderResult head = decode_fixed_header(wire, {}, kV5);
  ASSERT_EQ(head.status, DecodeStatus::Ok);
  PublishView view;
  // A list left from another packet: longer, with other types in its entries.
  Properties parsed;
  parsed.add(PropertyId::MessageExpiryInterval, 5).add(PropertyId::ResponseTopic, "r");
  parsed.add_user("x", "y");
  ASSERT_EQ(decode_publish(wire, head.header, view, kV5, &parsed).message, "");
  EXPECT_TRUE(parsed == p.properties);

  // None: an empty list.
  const std::string plain = encode(Publish{"a/b", "x", 1, false, false, 7}, kV5);
  ASSERT_EQ(
      decode_publish(plain, decode_fixed_header(plain, {}, kV5).header, view, kV5, &parsed).message,
      "");
  EXPECT_TRUE(parsed.empty());
  EXPECT_TRUE(view.properties.empty());
  EXPECT_EQ(view.packet_id, 7);

  // decode_properties keeps only what it read, also when it stops at an error.
  Properties reused = p.properties;
  const std::string expiry = bytes({0x02, 0, 0, 0, 9});
  ASSERT_EQ(decode_properties(expiry, PropertyContext::Publish, reused).message, "");
  EXPECT_TRUE(reused == Properties{}.add(PropertyId::MessageExpiryInterval, 9));
  reused = p.properties;
  const std::string truncated = bytes({0x02, 0, 0, 0, 9, 0x03, 0, 5, 'a'});
  EXPECT_THAT(decode_properties(truncated, PropertyContext::Publish, reused).message,
              HasSubstr("runs past the end"));
  EXPECT_TRUE(reused == Properties{}.add(PropertyId::MessageExpiryInterval, 9));
}

TEST(Mqtt5PublishView, EncodePublishV5MatchesEncodeForEveryQos) {
  // Topics of several lengths (the head of a PUBLISH is written in one append up to 128 bytes),
  // with and without properties.
  for (std::uint8_t qos = 0; qos < 3; ++qos) {
    for (const std::string& topic :
         {"some/topic"s, std::string(64, 't'), std::string(65, 'u'), std::string(117, 'v'),
          std::string(118, 'w'), std::string(300, 'x')}) {
      const std::uint16_t id = qos > 0 ? 0x1234 : 0;
      Publish p{topic, std::string(300, 'p'), qos, qos == 1, qos == 2, id};
      std::string out;
      encode_publish_v5(out, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id, {});
      EXPECT_EQ(hex(out), hex(encode(p, kV5))) << "QoS " << int(qos);
      p.properties.add(PropertyId::PayloadFormatIndicator, 1);
      std::string props;
      encode_properties(p.properties, props);
      out.clear();
      encode_publish_v5(out, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id, props);
      EXPECT_EQ(hex(out), hex(encode(p, kV5))) << "QoS " << int(qos) << " with a property";
      p.properties.add_user("k", std::string(100, 'v'));  // the head no longer fits 128 bytes
      props.clear();
      encode_properties(p.properties, props);
      out.clear();
      encode_publish_v5(out, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id, props);
      EXPECT_EQ(hex(out), hex(encode(p, kV5))) << "QoS " << int(qos) << " with long properties";
    }
  }
}

TEST(Mqtt5PublishView, MutatedPacketsAgreeWithDecode) {
  Publish p{"a/b", "xyz", 1, false, false, 9};
  p.properties.add(PropertyId::TopicAlias, 3).add(PropertyId::ContentType, "c").add_user("u", "");
  const std::string wire = encode(p, kV5);
  for (std::size_t pos = 1; pos < wire.size(); ++pos) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string m = wire;
      m[pos] = static_cast<char>(m[pos] ^ (1 << bit));
      const HeaderResult head = decode_fixed_header(m, {}, kV5);
      if (head.status != DecodeStatus::Ok || head.header.packet_length() > m.size()) continue;
      const std::string whole = m.substr(0, head.header.packet_length());
      PublishView view;
      const DecodeError e = decode_publish(whole, head.header, view, kV5);
      const DecodeResult r = decode(whole, {}, kV5);
      ASSERT_EQ(e.message.empty(), r.status == DecodeStatus::Ok) << hex(m) << e.message;
      if (!e.message.empty()) {
        EXPECT_EQ(e.message, r.error);
        EXPECT_EQ(e.reason, r.reason);
      }
    }
  }
}

// Calls `check(mutated, packet, header)` for `wire` and each copy of it with one bit flipped
// whose fixed header still reads as a whole PUBLISH (`packet`: that many bytes of it).
template <typename Check>
void for_each_mutated_publish(const std::string& wire, ProtocolVersion version, Check check) {
  for (std::size_t pos = 0; pos < wire.size(); ++pos) {
    for (int bit = -1; bit < 8; ++bit) {
      std::string m = wire;
      if (bit >= 0) m[pos] = static_cast<char>(m[pos] ^ (1 << bit));
      const HeaderResult head = decode_fixed_header(m, {}, version);
      if (head.status != DecodeStatus::Ok || head.header.type != PacketType::Publish ||
          head.header.packet_length() > m.size()) {
        continue;
      }
      check(m, m.substr(0, head.header.packet_length()), head.header);
    }
  }
}

// The fields a PublishView shares with a decoded Publish are equal.
void expect_same_publish(const PublishView& view, const Publish& p, const std::string& wire) {
  EXPECT_EQ(view.topic, p.topic) << hex(wire);
  EXPECT_EQ(view.payload, p.payload) << hex(wire);
  EXPECT_EQ(view.qos, p.qos) << hex(wire);
  EXPECT_EQ(view.packet_id, p.packet_id) << hex(wire);
  EXPECT_EQ(view.retain, p.retain) << hex(wire);
  EXPECT_EQ(view.dup, p.dup) << hex(wire);
}

// A PUBLISH without properties takes a faster path (read in the 3.1.1 layout): every mutation
// of one still agrees with decode(), and what it yields is what decode() yields.
TEST(Mqtt5PublishView, MutatedPacketsWithoutPropertiesAgreeWithDecode) {
  for (std::uint8_t qos : {0, 1}) {
    const std::string wire =
        encode(Publish{"a/b", "xyz", qos, false, false, std::uint16_t(qos ? 9 : 0)}, kV5);
    for_each_mutated_publish(wire, kV5, [](const std::string& m, const std::string& whole,
                                           const FixedHeader& header) {
      PublishView view;
      Properties parsed;
      parsed.add(PropertyId::ContentType, "left over");
      const DecodeError e = decode_publish(whole, header, view, kV5, &parsed);
      const DecodeResult r = decode(whole, {}, kV5);
      ASSERT_EQ(e.message.empty(), r.status == DecodeStatus::Ok) << hex(m) << e.message;
      if (!e.message.empty()) {
        EXPECT_EQ(e.message, r.error);
        EXPECT_EQ(e.reason, r.reason);
        return;
      }
      const auto& p = std::get<Publish>(r.packet);
      expect_same_publish(view, p, m);
      EXPECT_TRUE(parsed == p.properties) << hex(m);
    });
  }
}

// A PUBLISH to the topic a receiver knows is read without checking the topic again: for every
// mutation of one, in both versions, decode_known_publish() declines, or yields what decode()
// yields (a packet decode() refuses is never accepted).
TEST(KnownTopicPublish, MutatedPacketsAreDeclinedOrReadAsDecodeReadsThem) {
  for (auto version : {ProtocolVersion::V311, kV5}) {
    for (std::uint8_t qos : {0, 1}) {
      const std::string wire =
          encode(Publish{"a/b", "xyz", qos, false, false, std::uint16_t(qos ? 9 : 0)}, version);
      int known = 0;
      for_each_mutated_publish(wire, version, [&](const std::string& m, const std::string& whole,
                                                  const FixedHeader& header) {
        PublishView view;
        if (!decode_known_publish(whole, header, view, version, "a/b")) return;
        ++known;
        const DecodeResult r = decode(whole, {}, version);
        ASSERT_EQ(r.status, DecodeStatus::Ok) << hex(m) << r.error;
        const auto& p = std::get<Publish>(r.packet);
        expect_same_publish(view, p, m);
        EXPECT_TRUE(view.properties.empty()) << hex(m);
        EXPECT_TRUE(p.properties.empty()) << hex(m);
      });
      EXPECT_GT(known, 1) << "the unchanged packet and some mutations of its payload";
    }
  }
  // Another topic, an empty known topic, or (MQTT 5) properties: declined.
  PublishView view;
  const std::string other = encode(Publish{"a/c", "xyz", 0}, ProtocolVersion::V311);
  const auto other_head = decode_fixed_header(other).header;
  EXPECT_FALSE(decode_known_publish(other, other_head, view, ProtocolVersion::V311, "a/b"));
  EXPECT_FALSE(decode_known_publish(other, other_head, view, ProtocolVersion::V311, ""));
  Publish with_properties{"a/b", "xyz", 0};
  with_properties.properties.add(PropertyId::ContentType, "text/plain");
  const std::string v5 = encode(with_properties, kV5);
  EXPECT_FALSE(decode_known_publish(v5, decode_fixed_header(v5, {}, kV5).header, view, kV5, "a/b"));
}

// Whatever the bytes, a v5 decode waits, fails with a reason code, or yields a packet that
// validates and encodes back to an equal packet.
TEST(Mqtt5Fuzz, MutatedPacketsNeverYieldInvalidPackets) {
  Connect connect;
  connect.protocol_level = 5;
  connect.client_id = "c";
  connect.properties.add(PropertyId::SessionExpiryInterval, 5).add_user("a", "b");
  connect.will = Will{"w", "m", 1, true};
  connect.will->properties.add(PropertyId::WillDelayInterval, 3);
  Publish publish{"a/b", "payload", 1, false, false, 7};
  publish.properties.add(PropertyId::TopicAlias, 2).add(PropertyId::CorrelationData, "\x01");
  Subscribe subscribe{4, {{"a/+", 1}, {"$share/g/#", 2}}};
  subscribe.properties.add(PropertyId::SubscriptionIdentifier, 200);
  Auth auth{ReasonCode::ContinueAuthentication};
  auth.properties.add(PropertyId::AuthenticationMethod, "m");
  const std::vector<Packet> seeds = {
      connect,
      Connack{true, {}, {}, every_property(PropertyContext::Connack)},
      publish,
      Puback{3, ReasonCode::QuotaExceeded},
      Pubrel{3},
      subscribe,
      Suback{4, {1, 0x80}},
      Unsubscribe{5, {"a/+", "b"}},
      Unsuback{5, {ReasonCode::Success}},
      Disconnect{ReasonCode::ServerShuttingDown},
      auth};
  std::mt19937 rng(54321);
  int ok = 0;
  int errors = 0;
  for (const auto& seed : seeds) {
    const std::string wire = encode(seed, kV5);
    for (std::size_t pos = 0; pos < wire.size(); ++pos) {
      for (int round = 0; round < 16; ++round) {
        std::string mutated = wire;
        mutated[pos] = static_cast<char>(round < 8 ? wire[pos] ^ (1 << round) : rng() & 0xFF);
        const DecodeResult r = decode(mutated, {}, kV5);
        if (r.status == DecodeStatus::Ok) {
          ++ok;
          ASSERT_EQ(validate(r.packet, kV5), "") << hex(mutated);
          const DecodeResult again = decode(encode(r.packet, kV5), {}, kV5);
          ASSERT_EQ(again.status, DecodeStatus::Ok) << again.error;
          ASSERT_TRUE(again.packet == r.packet) << hex(mutated);
        } else if (r.status == DecodeStatus::Error) {
          ++errors;
          ASSERT_FALSE(r.error.empty());
          ASSERT_GE(static_cast<int>(r.reason), 0x80) << r.error;
        }
      }
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(errors, 0);
}

// The MQTT 5 seeds of the decode fuzzer (sdk/fuzz/make_corpus.py) are valid streams: each
// decodes to the end as MQTT 5, so the fuzzer starts from packets the decoder accepts.
TEST(Mqtt5Corpus, SeedsDecodeAsMqtt5) {
  const std::filesystem::path dir =
      std::filesystem::path(BAETYL_SOURCE_DIR) / "sdk/fuzz/corpus/mqtt_decode_fuzzer";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("c2s-v5-") && !name.starts_with("s2c-v5-")) continue;
    SCOPED_TRACE(name);
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string stream{std::istreambuf_iterator<char>(in), {}};
    std::size_t offset = 0;
    while (offset < stream.size()) {
      const DecodeResult r = decode(std::string_view(stream).substr(offset), {}, kV5);
      ASSERT_EQ(r.status, DecodeStatus::Ok) << r.error;
      offset += r.consumed;
    }
    ++files;
  }
  EXPECT_GE(files, 20);
}

}  // namespace
}  // namespace baetyl::mqtt
