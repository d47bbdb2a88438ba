#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "baetyl/mqtt/codec.h"
#include "support/wire_bytes.h"

namespace baetyl::mqtt {

void PrintTo(DecodeStatus status, std::ostream* os) {
  switch (status) {
    case DecodeStatus::Ok:
      *os << "Ok";
      return;
    case DecodeStatus::Incomplete:
      *os << "Incomplete";
      return;
    case DecodeStatus::Error:
      *os << "Error";
      return;
  }
}

namespace {

using namespace std::string_literals;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using baetyl::testing::bytes;
using baetyl::testing::hex;

// Encodes, decodes and compares; then checks that every proper prefix is Incomplete.
void expect_round_trip(const Packet& packet, bool check_prefixes = true) {
  SCOPED_TRACE(std::string(to_string(type_of(packet))));
  ASSERT_EQ(validate(packet), "");
  const std::string wire = encode(packet);
  EXPECT_EQ(wire.size(), encoded_size(packet));
  const DecodeResult result = decode(wire);
  ASSERT_EQ(result.status, DecodeStatus::Ok) << result.error;
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.consumed, wire.size());
  EXPECT_EQ(result.packet.index(), packet.index());
  EXPECT_TRUE(result.packet == packet)
      << "decoded packet differs; wire: " << hex(wire.substr(0, 64));
  if (!check_prefixes) return;
  for (std::size_t n = 0; n < wire.size(); ++n) {
    const DecodeResult partial = decode(std::string_view(wire).substr(0, n));
    if (partial.status != DecodeStatus::Incomplete || partial.consumed != 0) {
      ADD_FAILURE() << "prefix of " << n << " of " << wire.size()
                    << " bytes is not Incomplete: " << partial.error;
      return;
    }
  }
}

// Decodes `data` and expects an Error whose message contains every one of `words`.
void expect_error(std::string_view data, std::initializer_list<std::string_view> words,
                  const DecodeLimits& limits = {}) {
  const DecodeResult result = decode(data, limits);
  ASSERT_EQ(result.status, DecodeStatus::Error) << "bytes: " << hex(data.substr(0, 64));
  EXPECT_EQ(result.consumed, 0u);
  for (auto word : words) EXPECT_THAT(result.error, HasSubstr(std::string(word)));
}

Connect basic_connect() {
  Connect c;
  c.client_id = "client-1";
  c.keep_alive = 60;
  return c;
}

// ----------------------------------------------------------------------------------------------
// Round trips

TEST(CodecRoundTrip, Connect) {
  expect_round_trip(basic_connect());

  Connect empty_id;  // empty client id is the hub's decision, not the codec's
  empty_id.clean_session = true;
  expect_round_trip(empty_id);

  Connect full;
  full.clean_session = false;
  full.keep_alive = 65535;
  full.client_id = "full-client";
  full.will = Will{"last/will", "bye\0\xff binary"s, 2, true};
  full.username = "user";
  full.password = "p\0ss\xff\xfe"s;  // binary data, no UTF-8 requirement
  expect_round_trip(full);

  Connect user_only = basic_connect();
  user_only.username = "alice";
  expect_round_trip(user_only);

  Connect empty_credentials = basic_connect();
  empty_credentials.username = "";
  empty_credentials.password = "";
  expect_round_trip(empty_credentials);

  for (std::uint8_t qos : {0, 1, 2}) {
    for (bool retain : {false, true}) {
      Connect with_will = basic_connect();
      with_will.will = Will{"w/" + std::to_string(qos), "", qos, retain};
      expect_round_trip(with_will);
    }
  }

  Connect mqtt31;
  mqtt31.protocol_name = "MQIsdp";
  mqtt31.protocol_level = 3;
  mqtt31.client_id = "old-client";
  expect_round_trip(mqtt31);

  Connect unicode = basic_connect();
  unicode.client_id = "客户端-é-𝄞";
  unicode.username = "utilisateur-é";
  expect_round_trip(unicode);
}

TEST(CodecRoundTrip, ConnectWithMaximalFields) {
  Connect c;
  c.client_id = std::string(65535, 'c');
  c.will = Will{std::string(65535, 'w'), std::string(65535, '\x01'), 1, true};
  c.username = std::string(65535, 'u');
  c.password = std::string(65535, '\xff');
  expect_round_trip(c, false);
  EXPECT_EQ(encoded_size(c), 1 + 3 + 10 + 5 * (2 + 65535u));
}

TEST(CodecRoundTrip, ConnectAnyProtocolLevelDecodes) {
  // An unsupported level must still decode, so that the hub can answer CONNACK code 1.
  for (int level : {0, 1, 2, 5, 6, 255}) {
    Connect c = basic_connect();
    c.protocol_level = static_cast<std::uint8_t>(level);
    expect_round_trip(c);
  }
}

TEST(CodecRoundTrip, Connack) {
  expect_round_trip(Connack{});
  expect_round_trip(Connack{true, ConnectReturnCode::Accepted});
  for (auto code : {ConnectReturnCode::UnacceptableProtocolVersion,
                    ConnectReturnCode::IdentifierRejected, ConnectReturnCode::ServerUnavailable,
                    ConnectReturnCode::BadUsernameOrPassword, ConnectReturnCode::NotAuthorized}) {
    expect_round_trip(Connack{false, code});
  }
}

TEST(CodecRoundTrip, PublishEveryQosAndFlag) {
  for (std::uint8_t qos : {0, 1, 2}) {
    for (bool retain : {false, true}) {
      for (bool dup : {false, true}) {
        if (qos == 0 && dup) continue;
        Publish p;
        p.topic = "sport/tennis/player1";
        p.payload = "score 15-0";
        p.qos = qos;
        p.retain = retain;
        p.dup = dup;
        p.packet_id = qos == 0 ? 0 : static_cast<std::uint16_t>(1000 + qos);
        expect_round_trip(p);
      }
    }
  }
}

TEST(CodecRoundTrip, PublishPayloadsAndTopics) {
  Publish empty_payload;
  empty_payload.topic = "t";
  expect_round_trip(empty_payload);

  Publish binary;
  binary.topic = "bin";
  for (int i = 0; i < 256; ++i) binary.payload += static_cast<char>(i);
  binary.qos = 1;
  binary.packet_id = 1;
  expect_round_trip(binary);

  Publish max_id = binary;
  max_id.qos = 2;
  max_id.packet_id = 65535;
  expect_round_trip(max_id);

  Publish slash;
  slash.topic = "/";
  slash.payload = "x";
  expect_round_trip(slash);

  Publish sys;
  sys.topic = "$SYS/broker/uptime";
  sys.payload = "42";
  expect_round_trip(sys);

  Publish unicode;
  unicode.topic = "température/salon/€";
  unicode.payload = "21.5";
  expect_round_trip(unicode);

  Publish long_topic;
  long_topic.topic = std::string(65535, 'a');
  long_topic.payload = "p";
  long_topic.qos = 1;
  long_topic.packet_id = 7;
  expect_round_trip(long_topic, false);

  Publish large;
  large.topic = "big";
  large.payload = std::string(300000, 'z');
  large.qos = 2;
  large.packet_id = 9;
  expect_round_trip(large, false);
}

TEST(CodecRoundTrip, PacketIdentifierPackets) {
  for (std::uint16_t id : {std::uint16_t{1}, std::uint16_t{0x1234}, std::uint16_t{65535}}) {
    expect_round_trip(Puback{id});
    expect_round_trip(Pubrec{id});
    expect_round_trip(Pubrel{id});
    expect_round_trip(Pubcomp{id});
    expect_round_trip(Unsuback{id});
  }
}

TEST(CodecRoundTrip, Subscribe) {
  expect_round_trip(Subscribe{1, {{"a/b", 0}}});
  expect_round_trip(Subscribe{65535, {{"#", 2}}});
  expect_round_trip(Subscribe{42,
                              {{"sport/tennis/player1/#", 0},
                               {"sport/+", 1},
                               {"+/+", 2},
                               {"/finance", 1},
                               {"$SYS/#", 0},
                               {"température/+", 2}}});
  Subscribe many{7, {}};
  for (int i = 0; i < 500; ++i) {
    many.subscriptions.push_back({"topic/" + std::to_string(i), static_cast<std::uint8_t>(i % 3)});
  }
  expect_round_trip(many);
}

TEST(CodecRoundTrip, Suback) {
  expect_round_trip(Suback{1, {0}});
  expect_round_trip(Suback{2, {0, 1, 2, kSubackFailure}});
  expect_round_trip(Suback{65535, std::vector<std::uint8_t>(300, kSubackFailure)});
}

TEST(CodecRoundTrip, Unsubscribe) {
  expect_round_trip(Unsubscribe{1, {"a/b"}});
  expect_round_trip(Unsubscribe{300, {"a/b", "c/+", "#", "$SYS/#", "/"}});
}

TEST(CodecRoundTrip, EmptyPackets) {
  expect_round_trip(Pingreq{});
  expect_round_trip(Pingresp{});
  expect_round_trip(Disconnect{});
}

// ----------------------------------------------------------------------------------------------
// Exact bytes, written by hand from the specification's figures.

void expect_bytes(const Packet& packet, const std::string& expected) {
  SCOPED_TRACE(std::string(to_string(type_of(packet))));
  EXPECT_EQ(hex(encode(packet)), hex(expected));
  const DecodeResult result = decode(expected);
  ASSERT_EQ(result.status, DecodeStatus::Ok) << result.error;
  EXPECT_EQ(result.consumed, expected.size());
  EXPECT_TRUE(result.packet == packet);
}

TEST(CodecBytes, Connect) {
  // 3.1.2.10: protocol name "MQTT", level 4, flags 0xCE (user name, password, will QoS 1,
  // will flag, clean session), keep alive 10.
  Connect c;
  c.keep_alive = 10;
  c.client_id = "cid";
  c.will = Will{"w", "bye", 1, false};
  c.username = "u";
  c.password = "p";
  expect_bytes(c, bytes({0x10, 29, 0, 4}) + "MQTT" + bytes({4, 0xCE, 0, 10, 0, 3}) + "cid" +
                      bytes({0, 1}) + "w" + bytes({0, 3}) + "bye" + bytes({0, 1}) + "u" +
                      bytes({0, 1}) + "p");

  Connect plain;
  plain.clean_session = false;
  plain.keep_alive = 0x1234;
  plain.client_id = "";
  expect_bytes(plain, bytes({0x10, 12, 0, 4}) + "MQTT" + bytes({4, 0x00, 0x12, 0x34, 0, 0}));

  Connect retained_will;
  retained_will.client_id = "x";
  retained_will.will = Will{"t", "", 2, true};
  // flags: will retain 0x20 | will QoS 2 0x10 | will flag 0x04 | clean session 0x02
  expect_bytes(retained_will, bytes({0x10, 18, 0, 4}) + "MQTT" + bytes({4, 0x36, 0, 0, 0, 1}) +
                                  "x" + bytes({0, 1}) + "t" + bytes({0, 0}));

  Connect v31;
  v31.protocol_name = "MQIsdp";
  v31.protocol_level = 3;
  v31.client_id = "a";
  expect_bytes(v31, bytes({0x10, 15, 0, 6}) + "MQIsdp" + bytes({3, 0x02, 0, 0, 0, 1}) + "a");
}

TEST(CodecBytes, Connack) {
  expect_bytes(Connack{true, ConnectReturnCode::Accepted}, bytes({0x20, 0x02, 0x01, 0x00}));
  expect_bytes(Connack{false, ConnectReturnCode::NotAuthorized}, bytes({0x20, 0x02, 0x00, 0x05}));
}

TEST(CodecBytes, Publish) {
  // 3.3.2.3: topic "a/b", packet identifier 10.
  expect_bytes(Publish{"a/b", "hi", 1, false, false, 10},
               bytes({0x32, 9, 0, 3}) + "a/b" + bytes({0, 10}) + "hi");
  expect_bytes(Publish{"a/b", "", 0, true, false, 0}, bytes({0x31, 5, 0, 3}) + "a/b");
  expect_bytes(Publish{"t", "x", 2, true, true, 0x0102},
               bytes({0x3D, 6, 0, 1}) + "t" + bytes({1, 2}) + "x");
}

TEST(CodecBytes, Acknowledgements) {
  expect_bytes(Puback{10}, bytes({0x40, 0x02, 0x00, 0x0A}));
  expect_bytes(Pubrec{0x1234}, bytes({0x50, 0x02, 0x12, 0x34}));
  expect_bytes(Pubrel{10}, bytes({0x62, 0x02, 0x00, 0x0A}));
  expect_bytes(Pubcomp{65535}, bytes({0x70, 0x02, 0xFF, 0xFF}));
  expect_bytes(Unsuback{10}, bytes({0xB0, 0x02, 0x00, 0x0A}));
}

TEST(CodecBytes, SubscribeSubackUnsubscribe) {
  // 3.8.3.4: "a/b" QoS 1 and "c/d" QoS 2, packet identifier 10.
  expect_bytes(Subscribe{10, {{"a/b", 1}, {"c/d", 2}}},
               bytes({0x82, 14, 0, 10, 0, 3}) + "a/b" + bytes({1, 0, 3}) + "c/d" + bytes({2}));
  // 3.9.3.1: success QoS 0, success QoS 2, failure.
  expect_bytes(Suback{10, {0, 2, 0x80}}, bytes({0x90, 5, 0, 10, 0x00, 0x02, 0x80}));
  // 3.10.3.2: "a/b" and "c/d".
  expect_bytes(Unsubscribe{10, {"a/b", "c/d"}},
               bytes({0xA2, 12, 0, 10, 0, 3}) + "a/b" + bytes({0, 3}) + "c/d");
}

TEST(CodecBytes, EmptyPackets) {
  expect_bytes(Pingreq{}, bytes({0xC0, 0x00}));
  expect_bytes(Pingresp{}, bytes({0xD0, 0x00}));
  expect_bytes(Disconnect{}, bytes({0xE0, 0x00}));
}

// ----------------------------------------------------------------------------------------------
// Remaining Length

struct LengthCase {
  std::size_t length;
  std::vector<int> encoded;
};

const std::vector<LengthCase>& length_cases() {
  static const std::vector<LengthCase> cases = {
      {0, {0x00}},
      {127, {0x7F}},
      {128, {0x80, 0x01}},
      {16383, {0xFF, 0x7F}},
      {16384, {0x80, 0x80, 0x01}},
      {2097151, {0xFF, 0xFF, 0x7F}},
      {2097152, {0x80, 0x80, 0x80, 0x01}},
      {268435455, {0xFF, 0xFF, 0xFF, 0x7F}},
  };
  return cases;
}

TEST(RemainingLength, HeaderDecodingAtEveryBoundary) {
  for (const auto& c : length_cases()) {
    std::string header = bytes({0x30});
    for (int b : c.encoded) header += static_cast<char>(b);
    const HeaderResult result = decode_fixed_header(header);
    ASSERT_EQ(result.status, DecodeStatus::Ok) << c.length << ": " << result.error;
    EXPECT_EQ(result.header.type, PacketType::Publish);
    EXPECT_EQ(result.header.remaining_length, c.length);
    EXPECT_EQ(result.header.header_length, 1 + c.encoded.size());
    EXPECT_EQ(result.header.packet_length(), 1 + c.encoded.size() + c.length);
    // Every prefix of the header is Incomplete.
    for (std::size_t n = 0; n < header.size(); ++n) {
      EXPECT_EQ(decode_fixed_header(header.substr(0, n)).status, DecodeStatus::Incomplete)
          << c.length << " prefix " << n;
    }
    // With only the header present, decode() waits for the body.
    const DecodeResult body_missing = decode(header);
    if (c.length > 0) {
      EXPECT_EQ(body_missing.status, DecodeStatus::Incomplete) << c.length;
    }
  }
}

TEST(RemainingLength, EncodingAtEveryBoundary) {
  for (const auto& c : length_cases()) {
    if (c.length < 3 || c.length > 2097152) continue;
    // A QoS 0 PUBLISH to topic "t" has a body of 3 + payload bytes.
    Publish p;
    p.topic = "t";
    p.payload = std::string(c.length - 3, 'x');
    const std::string wire = encode(p);
    ASSERT_EQ(wire.size(), 1 + c.encoded.size() + c.length);
    std::string expected_header = bytes({0x30});
    for (int b : c.encoded) expected_header += static_cast<char>(b);
    EXPECT_EQ(hex(wire.substr(0, expected_header.size())), hex(expected_header)) << c.length;
    const DecodeResult result = decode(wire);
    ASSERT_EQ(result.status, DecodeStatus::Ok) << result.error;
    EXPECT_TRUE(result.packet == Packet{p});
  }
  EXPECT_EQ(hex(encode(Pingreq{})), "c0 00");  // remaining length 0
}

TEST(RemainingLength, MoreThanFourBytesIsMalformed) {
  const std::string five = bytes({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01});
  const HeaderResult header = decode_fixed_header(five);
  EXPECT_EQ(header.status, DecodeStatus::Error);
  EXPECT_THAT(header.error, AllOf(HasSubstr("PUBLISH"), HasSubstr("malformed remaining length")));
  expect_error(five, {"remaining length", "more than 4 bytes"});
  // Known to be malformed as soon as the fourth byte has its continuation bit set.
  expect_error(bytes({0x30, 0x80, 0x80, 0x80, 0x80}), {"malformed remaining length"});
  EXPECT_EQ(decode(bytes({0x30, 0x80, 0x80, 0x80})).status, DecodeStatus::Incomplete);
}

TEST(RemainingLength, OversizeRejectedBeforeTheBody) {
  const DecodeLimits limits{262144};
  // Only the fixed header of a 300000-byte PUBLISH has arrived.
  const std::string header = bytes({0x30, 0xE0, 0xA7, 0x12});  // 300000
  ASSERT_EQ(decode_fixed_header(header).header.remaining_length, 300000u);
  const HeaderResult result = decode_fixed_header(header, limits);
  EXPECT_EQ(result.status, DecodeStatus::Error);
  EXPECT_EQ(result.error, "PUBLISH: remaining length exceeds limit (300000 > 262144 bytes)");
  expect_error(header, {"remaining length exceeds limit (300000 > 262144 bytes)"}, limits);
  expect_error(header + "partial body", {"exceeds limit"}, limits);

  // Exactly at the limit is fine: the decoder waits for the body.
  const std::string at_limit = bytes({0x30, 0x80, 0x80, 0x10});  // 262144
  ASSERT_EQ(decode_fixed_header(at_limit).header.remaining_length, 262144u);
  EXPECT_EQ(decode(at_limit, limits).status, DecodeStatus::Incomplete);
  EXPECT_EQ(decode(at_limit + "xx", limits).status, DecodeStatus::Incomplete);

  // A small limit applies to every packet type.
  expect_error(bytes({0x82, 0x0B}), {"SUBSCRIBE", "exceeds limit (11 > 10 bytes)"},
               DecodeLimits{10});
}

// ----------------------------------------------------------------------------------------------
// Streams

TEST(CodecStream, BackToBackPacketsDecodeOneAtATime) {
  const std::vector<Packet> packets = {Publish{"a/b", "first", 1, false, false, 1}, Pingreq{},
                                       Subscribe{2, {{"x/#", 2}}},
                                       Publish{"c", "", 0, true, false, 0}, Disconnect{}};
  std::string stream;
  for (const auto& p : packets) encode(p, stream);

  std::string_view rest = stream;
  for (const auto& expected : packets) {
    const DecodeResult result = decode(rest);
    ASSERT_EQ(result.status, DecodeStatus::Ok) << result.error;
    EXPECT_TRUE(result.packet == expected) << to_string(type_of(expected));
    EXPECT_EQ(result.consumed, encoded_size(expected));
    rest.remove_prefix(result.consumed);
  }
  EXPECT_TRUE(rest.empty());
  EXPECT_EQ(decode(rest).status, DecodeStatus::Incomplete);
}

TEST(CodecStream, BytesArrivingOneByOne) {
  std::string stream;
  encode(Publish{"a", "hello", 2, false, false, 3}, stream);
  encode(Puback{3}, stream);
  std::string buffer;
  std::vector<Packet> decoded;
  for (char c : stream) {
    buffer += c;
    const DecodeResult result = decode(buffer);
    ASSERT_NE(result.status, DecodeStatus::Error) << result.error;
    if (result.status == DecodeStatus::Ok) {
      decoded.push_back(result.packet);
      buffer.erase(0, result.consumed);
    }
  }
  ASSERT_EQ(decoded.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<Publish>(decoded[0]));
  EXPECT_TRUE(decoded[1] == Packet{Puback{3}});
  EXPECT_TRUE(buffer.empty());
}

TEST(CodecStream, EncodeAppendsToTheCallersString) {
  std::string out = "prefix";
  encode(Puback{5}, out);
  EXPECT_EQ(hex(out), hex("prefix" + bytes({0x40, 0x02, 0x00, 0x05})));

  // One reservation of the exact size: no reallocation when the capacity is already there.
  Publish p{"topic", std::string(1000, 'x'), 1, false, false, 1};
  std::string reserved;
  reserved.reserve(encoded_size(p));
  const char* data = reserved.data();
  encode(p, reserved);
  EXPECT_EQ(reserved.data(), data);
  EXPECT_EQ(reserved.size(), encoded_size(p));
}

// ----------------------------------------------------------------------------------------------
// Fixed header

TEST(FixedHeader, ReportsTypeFlagsAndLengths) {
  const HeaderResult r = decode_fixed_header(bytes({0x3B, 0x80, 0x01}));
  ASSERT_EQ(r.status, DecodeStatus::Ok) << r.error;
  EXPECT_EQ(r.header.type, PacketType::Publish);
  EXPECT_EQ(r.header.flags, 0x0B);
  EXPECT_EQ(r.header.remaining_length, 128u);
  EXPECT_EQ(r.header.header_length, 3u);
  EXPECT_EQ(r.header.packet_length(), 131u);
  EXPECT_EQ(decode_fixed_header("").status, DecodeStatus::Incomplete);
}

TEST(FixedHeader, ReservedPacketTypes) {
  expect_error(bytes({0x00, 0x00}), {"packet type 0", "reserved"});
  expect_error(bytes({0xF0, 0x00}), {"packet type 15", "reserved"});
  // Rejected from the first byte alone.
  EXPECT_EQ(decode_fixed_header(bytes({0xF0})).status, DecodeStatus::Error);
}

TEST(FixedHeader, ReservedFlagsForEveryType) {
  for (int type = 1; type <= 14; ++type) {
    if (type == 3) continue;  // PUBLISH flags carry DUP, QoS and RETAIN
    const int required = (type == 6 || type == 8 || type == 10) ? 0b0010 : 0;
    const std::string name(to_string(static_cast<PacketType>(type)));
    for (int flags = 0; flags < 16; ++flags) {
      const std::string first = bytes({type << 4 | flags});
      const HeaderResult r = decode_fixed_header(first);
      if (flags == required) {
        EXPECT_EQ(r.status, DecodeStatus::Incomplete) << name << " " << flags << ": " << r.error;
      } else {
        EXPECT_EQ(r.status, DecodeStatus::Error) << name << " " << flags;
        EXPECT_THAT(r.error,
                    AllOf(StartsWith(name + ": "), HasSubstr("reserved"), HasSubstr("flags")));
      }
    }
  }
  const HeaderResult pubrel = decode_fixed_header(bytes({0x60, 0x02, 0x00, 0x01}));
  EXPECT_EQ(pubrel.error, "PUBREL: reserved fixed header flags must be 0b0010 (got 0b0000)");
  expect_error(bytes({0x80, 0x06, 0, 1, 0, 1, 'a', 0}), {"SUBSCRIBE", "flags", "0b0010"});
  expect_error(bytes({0xA0, 0x05, 0, 1, 0, 1, 'a'}), {"UNSUBSCRIBE", "flags", "0b0010"});
  expect_error(bytes({0x11, 0x00}), {"CONNECT", "flags", "0b0001"});
}

// ----------------------------------------------------------------------------------------------
// Malformed packets

TEST(MalformedPublish, FixedHeaderFlags) {
  expect_error(bytes({0x36, 0x05, 0, 1, 't', 0, 1}), {"PUBLISH", "QoS 3"});
  expect_error(bytes({0x38, 0x03, 0, 1, 't'}), {"PUBLISH", "DUP", "QoS 0"});
  EXPECT_EQ(decode_fixed_header(bytes({0x36})).status, DecodeStatus::Error);
  EXPECT_EQ(decode(bytes({0x3A, 0x05, 0, 1, 't', 0, 1})).status, DecodeStatus::Ok);  // DUP QoS 1
}

TEST(MalformedPublish, PacketIdentifier) {
  const DecodeResult q1 = decode(bytes({0x32, 0x05, 0, 1, 't', 0, 0}));
  EXPECT_EQ(q1.status, DecodeStatus::Error);
  EXPECT_EQ(q1.error, "PUBLISH: packet identifier must be non-zero for QoS 1");
  expect_error(bytes({0x34, 0x05, 0, 1, 't', 0, 0}),
               {"PUBLISH: packet identifier must be non-zero for QoS 2"});
  expect_error(bytes({0x32, 0x04, 0, 1, 't', 0}), {"PUBLISH", "packet identifier", "past the end"});
  expect_error(bytes({0x32, 0x03, 0, 1, 't'}), {"PUBLISH", "packet identifier", "past the end"});
}

TEST(MalformedPublish, TopicName) {
  const auto publish = [](const std::string& topic) {
    return bytes({0x30, static_cast<int>(topic.size() + 2), 0, static_cast<int>(topic.size())}) +
           topic;
  };
  expect_error(publish("a/+"), {"PUBLISH", "topic name", "wildcards"});
  expect_error(publish("a/#"), {"PUBLISH", "topic name", "wildcards"});
  expect_error(publish(""), {"PUBLISH", "topic name", "empty"});
  expect_error(publish("a\xff"), {"PUBLISH", "topic name", "UTF-8"});
  expect_error(publish("\xed\xa0\x80"), {"PUBLISH", "topic name", "UTF-8"});  // surrogate
  expect_error(publish("a\0b"s), {"PUBLISH", "topic name", "U+0000"});
  expect_error(bytes({0x30, 0x03, 0, 5, 'a'}), {"PUBLISH", "topic name", "past the end"});
  expect_error(bytes({0x30, 0x01, 0}), {"PUBLISH", "topic name", "past the end"});
  expect_error(bytes({0x30, 0x00}), {"PUBLISH", "topic name", "past the end"});
}

// The CONNECT header up to (excluding) the flags byte, then flags, keep alive and the rest.
std::string connect_bytes(int flags, const std::string& payload, const std::string& name = "MQTT",
                          int level = 4) {
  std::string body =
      bytes({0, static_cast<int>(name.size())}) + name + bytes({level, flags, 0, 60}) + payload;
  return bytes({0x10, static_cast<int>(body.size())}) + body;
}

std::string str(const std::string& s) {
  return bytes({static_cast<int>(s.size() >> 8), static_cast<int>(s.size() & 0xFF)}) + s;
}

TEST(MalformedConnect, ValidBaselineDecodes) {
  const DecodeResult r = decode(connect_bytes(0x02, str("id")));
  ASSERT_EQ(r.status, DecodeStatus::Ok) << r.error;
  const auto& c = std::get<Connect>(r.packet);
  EXPECT_EQ(c.client_id, "id");
  EXPECT_TRUE(c.clean_session);
  EXPECT_EQ(c.keep_alive, 60);
}

TEST(MalformedConnect, ProtocolName) {
  expect_error(connect_bytes(0x02, str("id"), "MQTX"), {"CONNECT", "protocol name"});
  expect_error(connect_bytes(0x02, str("id"), "mqtt"), {"CONNECT", "protocol name"});
  expect_error(connect_bytes(0x02, str("id"), ""), {"CONNECT", "protocol name"});
  expect_error(connect_bytes(0x02, str("id"), "MQIsdpX"), {"CONNECT", "protocol name"});
  expect_error(bytes({0x10, 0x00}), {"CONNECT", "protocol name", "past the end"});
  expect_error(bytes({0x10, 0x03, 0, 4, 'M'}), {"CONNECT", "protocol name", "past the end"});
}

TEST(MalformedConnect, Flags) {
  expect_error(connect_bytes(0x03, str("id")), {"CONNECT", "reserved", "bit 0"});
  expect_error(connect_bytes(0x02 | 0x08, str("id")), {"CONNECT", "will QoS", "will flag"});
  expect_error(connect_bytes(0x02 | 0x10, str("id")), {"CONNECT", "will QoS", "will flag"});
  expect_error(connect_bytes(0x02 | 0x20, str("id")), {"CONNECT", "will retain", "will flag"});
  expect_error(connect_bytes(0x02 | 0x04 | 0x18, str("id") + str("w") + str("m")),
               {"CONNECT", "will QoS 3"});
  expect_error(connect_bytes(0x02 | 0x40, str("id") + str("pw")),
               {"CONNECT", "password", "username"});
}

TEST(MalformedConnect, Strings) {
  expect_error(connect_bytes(0x02, str("a\xff")), {"CONNECT", "client identifier", "UTF-8"});
  expect_error(connect_bytes(0x02, str("a\0b"s)), {"CONNECT", "client identifier", "U+0000"});
  expect_error(connect_bytes(0x82, str("id") + str("\xc0\x80")), {"CONNECT", "user name", "UTF-8"});
  expect_error(connect_bytes(0x82, str("id") + str("u\0"s)), {"CONNECT", "user name", "U+0000"});
  expect_error(connect_bytes(0x06, str("id") + str("w/+") + str("m")),
               {"CONNECT", "will topic", "wildcards"});
  expect_error(connect_bytes(0x06, str("id") + str("") + str("m")),
               {"CONNECT", "will topic", "empty"});
  expect_error(connect_bytes(0x06, str("id") + str("w\xff") + str("m")),
               {"CONNECT", "will topic", "UTF-8"});
  // Will message and password are binary data: any bytes are fine.
  const DecodeResult ok = decode(
      connect_bytes(0xC6, str("id") + str("w") + str("\xff\0"s) + str("u") + str("\xfe\0"s)));
  ASSERT_EQ(ok.status, DecodeStatus::Ok) << ok.error;
  EXPECT_EQ(std::get<Connect>(ok.packet).password, "\xfe\0"s);
  EXPECT_EQ(std::get<Connect>(ok.packet).will->payload, "\xff\0"s);
}

TEST(MalformedConnect, TruncatedAndLeftOverFields) {
  expect_error(connect_bytes(0x02, ""), {"CONNECT", "client identifier", "past the end"});
  expect_error(connect_bytes(0x02, bytes({0, 5}) + "ab"),
               {"CONNECT", "client identifier", "past the end"});
  expect_error(connect_bytes(0x06, str("id")), {"CONNECT", "will topic", "past the end"});
  expect_error(connect_bytes(0x06, str("id") + str("w")),
               {"CONNECT", "will message", "past the end"});
  expect_error(connect_bytes(0x82, str("id")), {"CONNECT", "user name", "past the end"});
  expect_error(connect_bytes(0xC2, str("id") + str("u")), {"CONNECT", "password", "past the end"});
  expect_error(connect_bytes(0x02, str("id") + "x"), {"CONNECT", "1 bytes left over"});
  expect_error(connect_bytes(0x82, str("id") + str("u") + str("p")), {"CONNECT", "left over"});
  expect_error(bytes({0x10, 0x07, 0, 4}) + "MQTT" + bytes({4}), {"CONNECT", "connect flags"});
  expect_error(bytes({0x10, 0x09, 0, 4}) + "MQTT" + bytes({4, 2, 0}), {"CONNECT", "keep alive"});
}

TEST(MalformedConnect, OtherProtocolLevelsDecodeBestEffort) {
  // An MQTT 5 CONNECT carries properties the 3.1.1 layout does not know; it still decodes so the
  // hub can answer "unacceptable protocol version".
  const std::string v5 = connect_bytes(0x02, bytes({0x00}) + str("id"), "MQTT", 5);
  const DecodeResult r = decode(v5);
  ASSERT_EQ(r.status, DecodeStatus::Ok) << r.error;
  EXPECT_EQ(r.consumed, v5.size());
  const auto& c = std::get<Connect>(r.packet);
  EXPECT_EQ(c.protocol_name, "MQTT");
  EXPECT_EQ(c.protocol_level, 5);
  EXPECT_EQ(validate(r.packet), "");

  // MQTT 5 allows a password without a user name.
  EXPECT_EQ(decode(connect_bytes(0x42, bytes({0x00}) + str("id") + str("pw"), "MQTT", 5)).status,
            DecodeStatus::Ok);
  // Levels 3 and 4 stay strict.
  expect_error(connect_bytes(0x02, bytes({0x00}) + str("id"), "MQTT", 4), {"CONNECT"});
  expect_error(connect_bytes(0x02, bytes({0x00}) + str("id"), "MQIsdp", 3), {"CONNECT"});
  // The protocol name is still checked.
  expect_error(connect_bytes(0x02, str("id"), "HTTP", 5), {"CONNECT", "protocol name"});
}

TEST(MalformedConnack, Fields) {
  expect_error(bytes({0x20, 0x02, 0x02, 0x00}), {"CONNACK", "acknowledge flags", "0x02"});
  expect_error(bytes({0x20, 0x02, 0x80, 0x00}), {"CONNACK", "acknowledge flags"});
  expect_error(bytes({0x20, 0x02, 0x00, 0x06}), {"CONNACK", "return code 6"});
  expect_error(bytes({0x20, 0x02, 0x00, 0xFF}), {"CONNACK", "return code 255"});
  expect_error(bytes({0x20, 0x02, 0x01, 0x05}), {"CONNACK", "session present"});
  expect_error(bytes({0x20, 0x03, 0x00, 0x00, 0x00}), {"CONNACK", "remaining length must be 2"});
  expect_error(bytes({0x20, 0x01, 0x00}), {"CONNACK", "remaining length must be 2 (got 1)"});
}

TEST(MalformedAcks, PacketIdentifierAndLength) {
  for (int type : {4, 5, 6, 7, 11}) {
    const int first = type << 4 | (type == 6 ? 0b0010 : 0);
    const std::string name(to_string(static_cast<PacketType>(type)));
    expect_error(bytes({first, 0x02, 0x00, 0x00}), {name + ": packet identifier must be non-zero"});
    expect_error(bytes({first, 0x03, 0x00, 0x01, 0x00}),
                 {name, "remaining length must be 2 (got 3)"});
    expect_error(bytes({first, 0x01, 0x01}), {name, "remaining length must be 2 (got 1)"});
    expect_error(bytes({first, 0x00}), {name, "remaining length must be 2 (got 0)"});
  }
}

TEST(MalformedSubscribe, Fields) {
  const auto sub = [](const std::string& payload) {
    return bytes({0x82, static_cast<int>(payload.size() + 2), 0, 1}) + payload;
  };
  EXPECT_EQ(decode(sub(str("a/b") + bytes({2}))).status, DecodeStatus::Ok);

  const DecodeResult qos3 = decode(sub(str("a/b") + bytes({3})));
  EXPECT_EQ(qos3.status, DecodeStatus::Error);
  EXPECT_EQ(qos3.error, "SUBSCRIBE: requested QoS 3 is invalid");
  expect_error(sub(str("a/b") + bytes({0x04})), {"SUBSCRIBE", "reserved bits", "requested QoS"});
  expect_error(sub(str("a/b") + bytes({0x81})), {"SUBSCRIBE", "reserved bits", "0x81"});
  expect_error(sub(str("ok") + bytes({0}) + str("a/b") + bytes({0xF0})), {"reserved bits"});
  expect_error(sub(""), {"SUBSCRIBE", "at least one topic filter"});
  expect_error(bytes({0x82, 0x06, 0, 0}) + str("a") + bytes({0}),
               {"SUBSCRIBE: packet identifier must be non-zero"});
  expect_error(sub(str("a/#/b") + bytes({0})), {"SUBSCRIBE", "topic filter", "'#'"});
  expect_error(sub(str("a+") + bytes({0})), {"SUBSCRIBE", "topic filter", "'+'"});
  expect_error(sub(str("") + bytes({0})), {"SUBSCRIBE", "topic filter", "empty"});
  expect_error(sub(str("a\xff") + bytes({0})), {"SUBSCRIBE", "topic filter", "UTF-8"});
  expect_error(sub(str("a\0"s) + bytes({0})), {"SUBSCRIBE", "topic filter", "U+0000"});
  expect_error(sub(str("a/b")), {"SUBSCRIBE", "requested QoS", "past the end"});
  expect_error(sub(bytes({0, 9}) + "a/b"), {"SUBSCRIBE", "topic filter", "past the end"});
  expect_error(sub(str("a/b") + bytes({1, 0})),
               {"SUBSCRIBE", "topic filter length", "past the end"});
  expect_error(bytes({0x82, 0x01, 0}), {"SUBSCRIBE", "packet identifier", "past the end"});
}

TEST(MalformedSuback, Fields) {
  expect_error(bytes({0x90, 0x02, 0, 1}), {"SUBACK", "at least one return code"});
  expect_error(bytes({0x90, 0x03, 0, 1, 3}), {"SUBACK", "return code 0x03 is invalid"});
  expect_error(bytes({0x90, 0x04, 0, 1, 0, 0x81}), {"SUBACK", "return code 0x81"});
  expect_error(bytes({0x90, 0x03, 0, 0, 0}), {"SUBACK: packet identifier must be non-zero"});
  expect_error(bytes({0x90, 0x01, 0}), {"SUBACK", "packet identifier", "past the end"});
}

TEST(MalformedUnsubscribe, Fields) {
  const auto unsub = [](const std::string& payload) {
    return bytes({0xA2, static_cast<int>(payload.size() + 2), 0, 1}) + payload;
  };
  EXPECT_EQ(decode(unsub(str("a/+"))).status, DecodeStatus::Ok);
  expect_error(unsub(""), {"UNSUBSCRIBE", "at least one topic filter"});
  expect_error(bytes({0xA2, 0x05, 0, 0}) + str("a"),
               {"UNSUBSCRIBE: packet identifier must be non-zero"});
  expect_error(unsub(str("a/#/b")), {"UNSUBSCRIBE", "topic filter", "'#'"});
  expect_error(unsub(str("")), {"UNSUBSCRIBE", "topic filter", "empty"});
  expect_error(unsub(str("\xff")), {"UNSUBSCRIBE", "topic filter", "UTF-8"});
  expect_error(unsub(bytes({0, 4}) + "a"), {"UNSUBSCRIBE", "topic filter", "past the end"});
  expect_error(unsub(str("a") + bytes({0})),
               {"UNSUBSCRIBE", "topic filter length", "past the end"});
}

TEST(MalformedEmptyPackets, RemainingLengthMustBeZero) {
  for (int type : {12, 13, 14}) {
    const std::string name(to_string(static_cast<PacketType>(type)));
    expect_error(bytes({type << 4, 0x01, 0x00}), {name, "remaining length must be 0 (got 1)"});
    // Known from the header alone.
    EXPECT_EQ(decode_fixed_header(bytes({type << 4, 0x05})).status, DecodeStatus::Error);
  }
}

// ----------------------------------------------------------------------------------------------
// validate() and encode() of in-memory packets

void expect_invalid(const Packet& packet, std::string_view expected) {
  const std::string message = validate(packet);
  EXPECT_THAT(message, HasSubstr(std::string(expected)));
  try {
    encode(packet);
    ADD_FAILURE() << "encode did not throw for: " << expected;
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(e.what(), message);
  }
}

TEST(Validate, Publish) {
  expect_invalid(Publish{"t", "", 3, false, false, 1}, "PUBLISH: QoS 3 is invalid");
  expect_invalid(Publish{"t", "", 0, false, true, 0}, "PUBLISH: DUP flag must be 0 for QoS 0");
  expect_invalid(Publish{"t", "", 1, false, false, 0},
                 "PUBLISH: packet identifier must be non-zero for QoS 1");
  expect_invalid(Publish{"t", "", 2, false, false, 0},
                 "PUBLISH: packet identifier must be non-zero for QoS 2");
  expect_invalid(Publish{"t", "", 0, false, false, 5}, "PUBLISH: packet identifier must be 0");
  expect_invalid(Publish{"a/+", "", 0, false, false, 0},
                 "PUBLISH: topic name must not contain wildcards ('+' or '#')");
  expect_invalid(Publish{"", "x", 0, false, false, 0}, "PUBLISH: topic name must not be empty");
  expect_invalid(Publish{std::string(65536, 'a'), "", 0, false, false, 0},
                 "PUBLISH: topic name is too long");
  EXPECT_EQ(validate(Publish{"a/b", "", 1, true, true, 1}), "");
}

TEST(Validate, Connect) {
  Connect bad_name = basic_connect();
  bad_name.protocol_name = "MQTT5";
  expect_invalid(bad_name, "CONNECT: protocol name");

  Connect bad_will = basic_connect();
  bad_will.will = Will{"w", "", 3, false};
  expect_invalid(bad_will, "CONNECT: will QoS 3 is invalid");
  bad_will.will = Will{"w/#", "", 1, false};
  expect_invalid(bad_will, "CONNECT: will topic name must not contain wildcards");

  Connect password_only = basic_connect();
  password_only.password = "secret";
  expect_invalid(password_only, "CONNECT: password flag requires the username flag");

  Connect bad_id = basic_connect();
  bad_id.client_id = "\xff";
  expect_invalid(bad_id, "CONNECT: client identifier is not valid UTF-8");
  bad_id.client_id = "a\0"s;
  expect_invalid(bad_id, "CONNECT: client identifier must not contain the null character");
  bad_id.client_id = std::string(65536, 'c');
  expect_invalid(bad_id, "CONNECT: client identifier is too long (65536 > 65535 bytes)");

  Connect long_fields = basic_connect();
  long_fields.username = std::string(65536, 'u');
  expect_invalid(long_fields, "CONNECT: user name is too long");
  long_fields.username = "u";
  long_fields.password = std::string(65536, 'p');
  expect_invalid(long_fields, "CONNECT: password is too long");
  long_fields.password.reset();
  long_fields.will = Will{"w", std::string(65536, 'm'), 0, false};
  expect_invalid(long_fields, "CONNECT: will message is too long");

  Connect bad_user = basic_connect();
  bad_user.username = "\xed\xbf\xbf";
  expect_invalid(bad_user, "CONNECT: user name is not valid UTF-8");
}

TEST(Validate, OtherPackets) {
  expect_invalid(Connack{false, static_cast<ConnectReturnCode>(6)}, "CONNACK: return code 6");
  expect_invalid(Connack{true, ConnectReturnCode::NotAuthorized}, "CONNACK: session present");
  expect_invalid(Puback{0}, "PUBACK: packet identifier must be non-zero");
  expect_invalid(Pubrec{0}, "PUBREC: packet identifier must be non-zero");
  expect_invalid(Pubrel{0}, "PUBREL: packet identifier must be non-zero");
  expect_invalid(Pubcomp{0}, "PUBCOMP: packet identifier must be non-zero");
  expect_invalid(Unsuback{0}, "UNSUBACK: packet identifier must be non-zero");
  expect_invalid(Subscribe{1, {}}, "SUBSCRIBE: payload must contain at least one topic filter");
  expect_invalid(Subscribe{0, {{"a", 0}}}, "SUBSCRIBE: packet identifier must be non-zero");
  expect_invalid(Subscribe{1, {{"a", 0}, {"b", 3}}}, "SUBSCRIBE: requested QoS 3 is invalid");
  expect_invalid(Subscribe{1, {{"a/#/b", 0}}}, "SUBSCRIBE: topic filter wildcard '#'");
  expect_invalid(Suback{1, {}}, "SUBACK: payload must contain at least one return code");
  expect_invalid(Suback{1, {0, 3}}, "SUBACK: return code 0x03 is invalid");
  expect_invalid(Suback{0, {0}}, "SUBACK: packet identifier must be non-zero");
  expect_invalid(Unsubscribe{1, {}}, "UNSUBSCRIBE: payload must contain at least one topic filter");
  expect_invalid(Unsubscribe{1, {"ok", "x+"}}, "UNSUBSCRIBE: topic filter wildcard '+'");
  expect_invalid(Unsubscribe{0, {"a"}}, "UNSUBSCRIBE: packet identifier must be non-zero");
  EXPECT_EQ(validate(Pingreq{}), "");
  EXPECT_EQ(validate(Disconnect{}), "");
}

TEST(Validate, EncodeOfInvalidPacketLeavesOutputUntouched) {
  std::string out = "keep";
  EXPECT_THROW(encode(Puback{0}, out), std::invalid_argument);
  EXPECT_EQ(out, "keep");
}

// ----------------------------------------------------------------------------------------------
// Robustness: whatever the bytes, decode either waits, fails, or yields a valid packet.

TEST(CodecFuzz, MutatedPacketsNeverYieldInvalidPackets) {
  Connect connect = basic_connect();
  connect.will = Will{"w/t", "m", 1, true};
  connect.username = "u";
  connect.password = "p";
  const std::vector<Packet> seeds = {connect,
                                     Connack{true, ConnectReturnCode::Accepted},
                                     Publish{"a/b", "payload", 1, false, false, 7},
                                     Publish{"x", "", 0, true, false, 0},
                                     Pubrel{3},
                                     Subscribe{4, {{"a/+", 1}, {"#", 2}}},
                                     Suback{4, {1, 0x80}},
                                     Unsubscribe{5, {"a/+", "b"}},
                                     Pingreq{}};
  std::mt19937 rng(12345);
  int ok = 0;
  int errors = 0;
  for (const auto& seed : seeds) {
    const std::string wire = encode(seed);
    for (std::size_t pos = 0; pos < wire.size(); ++pos) {
      for (int round = 0; round < 24; ++round) {
        std::string mutated = wire;
        mutated[pos] = static_cast<char>(round < 8 ? wire[pos] ^ (1 << round) : rng() & 0xFF);
        const DecodeResult r = decode(mutated);
        if (r.status == DecodeStatus::Ok) {
          ++ok;
          ASSERT_LE(r.consumed, mutated.size());
          ASSERT_EQ(validate(r.packet), "") << hex(mutated);
          const DecodeResult again = decode(encode(r.packet));
          ASSERT_EQ(again.status, DecodeStatus::Ok) << again.error;
          ASSERT_TRUE(again.packet == r.packet) << hex(mutated);
        } else if (r.status == DecodeStatus::Error) {
          ++errors;
          ASSERT_FALSE(r.error.empty());
          ASSERT_EQ(r.consumed, 0u);
        } else {
          ASSERT_EQ(r.consumed, 0u);
        }
      }
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(errors, 0);
}

// ----------------------------------------------------------------------------------------------
// Names

TEST(PacketNames, ToString) {
  const char* expected[] = {"CONNECT",  "CONNACK", "PUBLISH",   "PUBACK",    "PUBREC",
                            "PUBREL",   "PUBCOMP", "SUBSCRIBE", "SUBACK",    "UNSUBSCRIBE",
                            "UNSUBACK", "PINGREQ", "PINGRESP",  "DISCONNECT"};
  for (int type = 1; type <= 14; ++type) {
    EXPECT_EQ(to_string(static_cast<PacketType>(type)), expected[type - 1]);
  }
  EXPECT_EQ(to_string(ConnectReturnCode::Accepted), "connection accepted");
  EXPECT_EQ(to_string(ConnectReturnCode::UnacceptableProtocolVersion),
            "unacceptable protocol version");
  EXPECT_EQ(to_string(ConnectReturnCode::IdentifierRejected), "identifier rejected");
  EXPECT_EQ(to_string(ConnectReturnCode::ServerUnavailable), "server unavailable");
  EXPECT_EQ(to_string(ConnectReturnCode::BadUsernameOrPassword), "bad user name or password");
  EXPECT_EQ(to_string(ConnectReturnCode::NotAuthorized), "not authorized");
  EXPECT_EQ(to_string(static_cast<ConnectReturnCode>(9)), "invalid return code");
}

TEST(PacketNames, TypeOfFollowsTheVariantOrder) {
  EXPECT_EQ(type_of(Connect{}), PacketType::Connect);
  EXPECT_EQ(type_of(Publish{}), PacketType::Publish);
  EXPECT_EQ(type_of(Unsuback{}), PacketType::Unsuback);
  EXPECT_EQ(type_of(Disconnect{}), PacketType::Disconnect);
}

}  // namespace
}  // namespace baetyl::mqtt

namespace baetyl::mqtt {

TEST(CodecEncodePublish, SameBytesAsEncodingAPublishValue) {
  for (std::uint8_t qos : {0, 1, 2}) {
    for (bool retain : {false, true}) {
      for (bool dup : {false, true}) {
        if (qos == 0 && dup) continue;
        for (std::size_t size : {0u, 5u, 200u, 20000u, 3000000u}) {
          Publish p;
          // Short topics go into one append with the header, long ones (here 300 bytes) apart.
          p.topic = size == 200 ? std::string(300, 't') : "a/b";
          p.payload = std::string(size, 'x');
          p.qos = qos;
          p.retain = retain;
          p.dup = dup;
          p.packet_id = qos ? 4242 : 0;
          std::string out = "prefix";
          encode_publish(out, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id);
          EXPECT_EQ(out, "prefix" + encode(p)) << int(qos) << retain << dup << size;
        }
      }
    }
  }
}

// The view decoder accepts and rejects exactly what decode() does, with the same fields and errors.
TEST(CodecDecodePublishView, AgreesWithDecodeOnMutatedPackets) {
  const std::vector<Publish> seeds = {Publish{"a/b", "payload", 1, false, false, 7},
                                      Publish{"x", "", 0, true, false, 0},
                                      Publish{"t/\xc3\xa9", std::string(300, 'p'), 2, false, true, 9}};
  std::mt19937 rng(777);
  int ok = 0;
  int errors = 0;
  for (const auto& seed : seeds) {
    const std::string wire = encode(seed);
    for (std::size_t pos = 0; pos < std::min<std::size_t>(wire.size(), 16); ++pos) {
      for (int round = 0; round < 24; ++round) {
        std::string mutated = wire;
        mutated[pos] = static_cast<char>(round < 8 ? wire[pos] ^ (1 << round) : rng() & 0xFF);
        const HeaderResult head = decode_fixed_header(mutated);
        if (head.status != DecodeStatus::Ok || head.header.type != PacketType::Publish ||
            head.header.packet_length() > mutated.size()) {
          continue;
        }
        const DecodeResult full = decode(mutated);
        PublishView view;
        const std::string error = decode_publish(mutated, head.header, view);
        if (full.status == DecodeStatus::Ok) {
          ++ok;
          ASSERT_EQ(error, "") << hex(mutated);
          const auto& p = std::get<Publish>(full.packet);
          EXPECT_EQ(view.topic, p.topic);
          EXPECT_EQ(view.payload, p.payload);
          EXPECT_EQ(view.qos, p.qos);
          EXPECT_EQ(view.retain, p.retain);
          EXPECT_EQ(view.dup, p.dup);
          EXPECT_EQ(view.packet_id, p.packet_id);
        } else {
          ++errors;
          EXPECT_EQ(error, full.error) << hex(mutated);
        }
      }
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(errors, 0);
}

TEST(CodecDecodePublishView, PointsIntoTheDecodedBytes) {
  const std::string wire = "junk" + encode(Publish{"a/b", "hello", 1, true, false, 3});
  const std::string_view packet = std::string_view(wire).substr(4);
  const HeaderResult head = decode_fixed_header(packet);
  ASSERT_EQ(head.status, DecodeStatus::Ok);
  PublishView view;
  ASSERT_EQ(decode_publish(packet, head.header, view), "");
  EXPECT_EQ(view.topic, "a/b");
  EXPECT_EQ(view.payload, "hello");
  EXPECT_TRUE(view.retain);
  EXPECT_EQ(view.packet_id, 3);
  EXPECT_GE(view.payload.data(), wire.data());
  EXPECT_LT(view.payload.data(), wire.data() + wire.size());
}

}  // namespace baetyl::mqtt
