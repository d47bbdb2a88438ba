// End-to-end tests of the hub with MQTT 5 clients: the real baetyl-hub binary on a free loopback
// port, hand-played MQTT 5 peers (exact packets, malformed bytes, reason codes), paho's MQTT 5
// mode and mosquitto_pub/sub -V mqttv5, mixed with 3.1.1 clients.
#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/ports.h"
#include "hub_test_support.h"

using namespace baetyl::hub::testing;
using namespace std::chrono_literals;
namespace mqtt = baetyl::mqtt;
using baetyl::testing::free_port;
using mqtt::PropertyId;
using mqtt::ReasonCode;

namespace {

constexpr std::uint32_t kNever = 0xFFFFFFFF;  // Session Expiry Interval that never ends

class Mqtt5Test : public HubTest {
 protected:
  std::unique_ptr<RawClient> connected5(const std::string& id, std::uint32_t expiry = 0,
                                        bool clean_start = true) {
    auto client = std::make_unique<RawClient>(port_);
    auto ack = client->connect(make_connect_v5(id, clean_start, expiry));
    EXPECT_EQ(ack.reason_code, ReasonCode::Success) << id;
    return client;
  }

  std::vector<std::uint8_t> subscribe(RawClient& c, std::vector<mqtt::Subscription> subs,
                                      mqtt::Properties properties = {}) {
    c.send(mqtt::Subscribe{++packet_id_, std::move(subs), std::move(properties)});
    auto ack = c.expect<mqtt::Suback>();
    EXPECT_EQ(ack.packet_id, packet_id_);
    return ack.return_codes;
  }

  std::uint16_t packet_id_ = 0;
};

// The properties a publisher attaches that the hub passes on, in this order.
mqtt::Properties request_properties() {
  mqtt::Properties p;
  p.add_user("first", "1")
      .add(PropertyId::PayloadFormatIndicator, 1)
      .add(PropertyId::ContentType, "application/json")
      .add_user("second", "2")
      .add(PropertyId::ResponseTopic, "reply/to/me")
      .add(PropertyId::CorrelationData, std::string("\x00\x01\xff", 3))
      .add_user("first", "3");
  return p;
}

// The reason code of the DISCONNECT `c` receives next.
ReasonCode disconnect_reason(RawClient& c) {
  auto d = c.expect<mqtt::Disconnect>();
  return d.reason_code;
}

}  // namespace

TEST_F(Mqtt5Test, ConnackCarriesTheHubsLimitsAndAnAssignedIdentifier) {
  RawClient c(port_);
  auto ack = c.connect(make_connect_v5(""));
  EXPECT_EQ(ack.reason_code, ReasonCode::Success);
  EXPECT_FALSE(ack.session_present);
  auto assigned = ack.properties.string(PropertyId::AssignedClientIdentifier);
  ASSERT_TRUE(assigned.has_value());
  EXPECT_FALSE(assigned->empty());
  EXPECT_EQ(ack.properties.integer(PropertyId::TopicAliasMaximum), 64u);
  // message.ingress.qos1.buffer.size
  EXPECT_EQ(ack.properties.integer(PropertyId::ReceiveMaximum), 100u);
  // message.length.max (32k by default) plus room for the topic and the other fields.
  EXPECT_EQ(ack.properties.integer(PropertyId::MaximumPacketSize), 32u * 1024 + 1024 + 5);
  EXPECT_FALSE(ack.properties.find(PropertyId::SubscriptionIdentifierAvailable));  // 1
  EXPECT_FALSE(ack.properties.find(PropertyId::SharedSubscriptionAvailable));      // 1
  EXPECT_FALSE(ack.properties.find(PropertyId::ServerKeepAlive));  // the hub imposes none

  // The assigned identifier resumes the session it names.
  std::string id(*assigned);
  c.send(mqtt::Disconnect{});
  RawClient again(port_);
  auto second = again.connect(make_connect_v5(id, false, 60));
  EXPECT_EQ(second.reason_code, ReasonCode::Success);
  EXPECT_FALSE(second.properties.find(PropertyId::AssignedClientIdentifier));
}

TEST_F(Mqtt5Test, RefusedConnectsGetMqtt5ReasonCodes) {
  struct Case {
    mqtt::Connect connect;
    ReasonCode expected;
  };
  auto with_auth = make_connect_v5("auth");
  with_auth.properties.add(PropertyId::AuthenticationMethod, "SCRAM-SHA-1");
  auto bad_will = make_connect_v5("will");
  bad_will.will = mqtt::Will{"forbidden/will", "x", 0, false, {}};
  std::vector<Case> cases{
      {make_connect_v5("bad", true, 0, "test", "wrong"), ReasonCode::BadUserNameOrPassword},
      {make_connect_v5("anon", true, 0, "", ""), ReasonCode::NotAuthorized},
      {make_connect_v5("bad id!"), ReasonCode::ClientIdentifierNotValid},
      {with_auth, ReasonCode::BadAuthenticationMethod},
      {bad_will, ReasonCode::NotAuthorized},
  };
  for (const auto& test : cases) {
    RawClient c(port_);
    auto ack = c.connect(test.connect);
    EXPECT_EQ(ack.reason_code, test.expected) << test.connect.client_id;
    EXPECT_TRUE(ack.properties.string(PropertyId::ReasonString).has_value());
    EXPECT_TRUE(c.closed_by_peer()) << test.connect.client_id;
  }
}

TEST_F(Mqtt5Test, PropertiesPassThroughInOrderAtEveryQos) {
  auto sub = connected5("sub5");
  EXPECT_EQ(subscribe(*sub, {{"req/#", 2}}), std::vector<std::uint8_t>{2});
  auto pub = connected5("pub5");
  for (std::uint8_t qos = 0; qos <= 2; ++qos) {
    auto properties = request_properties();
    properties.add(PropertyId::TopicAlias, 5);  // the publisher's, never passed on
    pub->send(publish_packet("req/" + std::to_string(qos), "{}", qos, qos + 10, properties));
    if (qos == 1) {
      EXPECT_EQ(pub->expect<mqtt::Puback>().reason_code, ReasonCode::Success);
    }
    if (qos == 2) {
      EXPECT_EQ(pub->expect<mqtt::Pubrec>().reason_code, ReasonCode::Success);
      pub->send(mqtt::Pubrel{12});
      EXPECT_EQ(pub->expect<mqtt::Pubcomp>().reason_code, ReasonCode::Success);
    }
    auto got = sub->expect<mqtt::Publish>();
    EXPECT_EQ(got.topic, "req/" + std::to_string(qos));
    EXPECT_EQ(got.qos, qos);
    EXPECT_EQ(got.properties, request_properties()) << "QoS " << int(qos);
    if (qos == 1) sub->send(mqtt::Puback{got.packet_id});
    if (qos == 2) {
      sub->send(mqtt::Pubrec{got.packet_id});
      sub->expect<mqtt::Pubrel>();
      sub->send(mqtt::Pubcomp{got.packet_id});
    }
  }
  // A Topic Alias set once names the topic of later PUBLISH packets with an empty topic.
  mqtt::Properties alias;
  alias.add(PropertyId::TopicAlias, 7);
  pub->send(publish_packet("req/alias", "a", 0, 0, alias));
  pub->send(publish_packet("", "b", 1, 20, alias));
  EXPECT_EQ(pub->expect<mqtt::Puback>().packet_id, 20);
  for (const char* payload : {"a", "b"}) {
    auto got = sub->expect<mqtt::Publish>();
    EXPECT_EQ(got.topic, "req/alias");
    EXPECT_EQ(got.payload, payload);
    EXPECT_TRUE(got.properties.empty());
    if (got.qos == 1) sub->send(mqtt::Puback{got.packet_id});
  }
}

TEST_F(Mqtt5Test, MixedProtocolsReceiveEachOthersMessages) {
  auto sub3 = connected("sub3");
  sub3->send(mqtt::Subscribe{1, {{"mix/#", 1}}});
  sub3->expect<mqtt::Suback>();
  auto sub5 = connected5("sub5");
  subscribe(*sub5, {{"mix/#", 1}});
  auto pub5 = connected5("pub5");
  auto pub3 = connected("pub3");

  pub5->send(publish_packet("mix/from5", "five", 1, 1, request_properties()));
  pub5->expect<mqtt::Puback>();
  auto at3 = sub3->expect<mqtt::Publish>();  // decoded as 3.1.1: no properties on the wire
  EXPECT_EQ(at3.payload, "five");
  sub3->send(mqtt::Puback{at3.packet_id});
  auto at5 = sub5->expect<mqtt::Publish>();
  EXPECT_EQ(at5.payload, "five");
  EXPECT_EQ(at5.properties, request_properties());
  sub5->send(mqtt::Puback{at5.packet_id});

  pub3->send(publish_packet("mix/from3", "three", 1, 2));
  pub3->expect<mqtt::Puback>();
  at3 = sub3->expect<mqtt::Publish>();
  EXPECT_EQ(at3.payload, "three");
  at5 = sub5->expect<mqtt::Publish>();
  EXPECT_EQ(at5.payload, "three");
  EXPECT_TRUE(at5.properties.empty());
}

TEST_F(Mqtt5Test, RetainedMessagesKeepTheirProperties) {
  auto pub = connected5("pub");
  pub->send(publish_packet("keep/me", "retained", 1, 1, request_properties(), true));
  pub->expect<mqtt::Puback>();
  auto sub = connected5("sub");
  subscribe(*sub, {{"keep/#", 1}});
  auto got = sub->expect<mqtt::Publish>();
  EXPECT_TRUE(got.retain);
  EXPECT_EQ(got.properties, request_properties());
  sub->send(mqtt::Puback{got.packet_id});

  // Also after a crash of the hub: the retained set is stored with the properties.
  hub_->stop(SIGKILL);
  hub_->start();
  RawClient later(port_);
  later.connect(make_connect_v5("later"));
  later.send(mqtt::Subscribe{1, {{"keep/#", 0}}});
  later.expect<mqtt::Suback>();
  got = later.expect<mqtt::Publish>();
  EXPECT_EQ(got.payload, "retained");
  EXPECT_EQ(got.properties, request_properties());
}

TEST_F(Mqtt5Test, AcknowledgementsCarryReasonCodes) {
  auto c = connected5("acks");
  // Not permitted: forbidden/# for pub, secret/# for sub (base_config's principal `test`).
  c->send(publish_packet("forbidden/x", "no", 1, 1));
  EXPECT_EQ(c->expect<mqtt::Puback>().reason_code, ReasonCode::NotAuthorized);
  c->send(publish_packet("forbidden/x", "no", 2, 2));
  EXPECT_EQ(c->expect<mqtt::Pubrec>().reason_code, ReasonCode::NotAuthorized);
  c->send(publish_packet("$SYS/mine", "no", 1, 3));
  EXPECT_EQ(c->expect<mqtt::Puback>().reason_code, ReasonCode::NotAuthorized);
  c->send(mqtt::Pubrel{42});  // never received
  EXPECT_EQ(c->expect<mqtt::Pubcomp>().reason_code, ReasonCode::PacketIdentifierNotFound);

  EXPECT_EQ(
      subscribe(*c,
                {{"ok/#", 1}, {"secret/#", 1}, {"a/b/c/d/e/f/g/h/i/j", 0}, {"$share/group/x", 1}}),
      (std::vector<std::uint8_t>{1, 0x87, 0x8F, 1}));
  c->send(mqtt::Unsubscribe{9, {"ok/#", "never/subscribed"}});
  auto unsuback = c->expect<mqtt::Unsuback>();
  EXPECT_EQ(unsuback.reason_codes,
            (std::vector<ReasonCode>{ReasonCode::Success, ReasonCode::NoSubscriptionExisted}));

  // A 3.1.1 client gets 0x80 for every refused filter.
  auto old = connected("old");
  old->send(mqtt::Subscribe{1, {{"secret/#", 1}, {"$share/group/secret/x", 1}, {"ok", 1}}});
  EXPECT_EQ(old->expect<mqtt::Suback>().return_codes, (std::vector<std::uint8_t>{0x80, 0x80, 1}));
}

TEST_F(Mqtt5Test, APayloadThatIsNotUtf8DespiteItsFormatIndicatorIsRefused) {
  auto sub = connected5("pf-sub");
  subscribe(*sub, {{"pf/#", 2}});
  auto pub = connected5("pf-pub");
  mqtt::Properties utf8;
  utf8.add(PropertyId::PayloadFormatIndicator, 1);
  const std::string not_utf8("ok \xc0\xaf \xff", 7);  // an overlong '/' and a byte never in UTF-8
  pub->send(publish_packet("pf/1", not_utf8, 1, 1, utf8));
  EXPECT_EQ(pub->expect<mqtt::Puback>().reason_code, ReasonCode::PayloadFormatInvalid);
  pub->send(publish_packet("pf/2", not_utf8, 2, 2, utf8));
  EXPECT_EQ(pub->expect<mqtt::Pubrec>().reason_code, ReasonCode::PayloadFormatInvalid);
  // The exchange ended with the PUBREC: the same packet identifier starts a new one.
  pub->send(publish_packet("pf/3", "h\xc3\xa9llo", 2, 2, utf8));
  EXPECT_EQ(pub->expect<mqtt::Pubrec>().reason_code, ReasonCode::Success);
  pub->send(mqtt::Pubrel{2});
  pub->expect<mqtt::Pubcomp>();
  pub->send(publish_packet("pf/4", not_utf8, 1, 4));  // no indicator: any bytes
  EXPECT_EQ(pub->expect<mqtt::Puback>().reason_code, ReasonCode::Success);
  std::vector<std::string> topics;
  while (auto packet = sub->receive(500ms)) {
    if (auto* p = std::get_if<mqtt::Publish>(&*packet)) {
      topics.push_back(p->topic);
      if (p->qos == 1) sub->send(mqtt::Puback{p->packet_id});
      if (p->qos == 2) sub->send(mqtt::Pubrec{p->packet_id});
    }
  }
  EXPECT_EQ(topics, (std::vector<std::string>{"pf/3", "pf/4"})) << "refused ones are not routed";
  // QoS 0 has no acknowledgement to refuse with: DISCONNECT 0x99.
  pub->send(publish_packet("pf/5", not_utf8, 0, 0, utf8));
  EXPECT_EQ(disconnect_reason(*pub), ReasonCode::PayloadFormatInvalid);
  EXPECT_TRUE(pub->closed_by_peer());
  EXPECT_TRUE(sub->silent_for(300ms));
}

TEST_F(Mqtt5Test, AClientThatRequestsNoProblemInformationGetsNoReasonStringOnAcknowledgements) {
  RawClient c(port_);
  auto connect = make_connect_v5("quiet");
  connect.properties.add(PropertyId::RequestProblemInformation, 0);
  c.connect(connect);
  mqtt::Properties utf8;
  utf8.add(PropertyId::PayloadFormatIndicator, 1);
  c.send(publish_packet("forbidden/x", "no", 1, 1));
  auto puback = c.expect<mqtt::Puback>();
  EXPECT_EQ(puback.reason_code, ReasonCode::NotAuthorized);
  EXPECT_TRUE(puback.properties.empty());
  c.send(publish_packet("forbidden/x", "no", 2, 2));
  auto pubrec = c.expect<mqtt::Pubrec>();
  EXPECT_EQ(pubrec.reason_code, ReasonCode::NotAuthorized);
  EXPECT_TRUE(pubrec.properties.empty());
  c.send(publish_packet("ok", std::string("\xff", 1), 1, 3, utf8));
  puback = c.expect<mqtt::Puback>();
  EXPECT_EQ(puback.reason_code, ReasonCode::PayloadFormatInvalid);
  EXPECT_TRUE(puback.properties.empty());
  c.send(mqtt::Pubrel{42});
  auto pubcomp = c.expect<mqtt::Pubcomp>();
  EXPECT_EQ(pubcomp.reason_code, ReasonCode::PacketIdentifierNotFound);
  EXPECT_TRUE(pubcomp.properties.empty());
  c.send(mqtt::Subscribe{5, {{"secret/#", 1}, {"a/b/c/d/e/f/g/h/i/j", 0}, {"ok", 1}}});
  auto suback = c.expect<mqtt::Suback>();
  EXPECT_EQ(suback.return_codes, (std::vector<std::uint8_t>{0x87, 0x8F, 1}));
  EXPECT_TRUE(suback.properties.empty());
  c.send(mqtt::Unsubscribe{6, {"never/subscribed"}});
  auto unsuback = c.expect<mqtt::Unsuback>();
  EXPECT_EQ(unsuback.reason_codes, std::vector<ReasonCode>{ReasonCode::NoSubscriptionExisted});
  EXPECT_TRUE(unsuback.properties.empty());
}

TEST_F(Mqtt5Test, RequestResponseInformationIsAnsweredWithoutResponseInformation) {
  RawClient c(port_);
  auto connect = make_connect_v5("asker");
  connect.properties.add(PropertyId::RequestResponseInformation, 1);
  auto ack = c.connect(connect);
  EXPECT_EQ(ack.reason_code, ReasonCode::Success);
  EXPECT_FALSE(ack.properties.find(PropertyId::ResponseInformation));
  // Request / response works with a response topic of the client's own choosing.
  subscribe(c, {{"replies/asker", 1}});
  auto responder = connected5("responder");
  subscribe(*responder, {{"requests", 1}});
  mqtt::Properties request;
  request.add(PropertyId::ResponseTopic, "replies/asker")
      .add(PropertyId::CorrelationData, std::string("id-1"));
  c.send(publish_packet("requests", "ping", 1, 1, request));
  c.expect<mqtt::Puback>();
  auto got = responder->expect<mqtt::Publish>();
  responder->send(mqtt::Puback{got.packet_id});
  mqtt::Properties response;
  response.add(PropertyId::CorrelationData,
               std::string(got.properties.string(PropertyId::CorrelationData).value_or("")));
  responder->send(
      publish_packet(std::string(got.properties.string(PropertyId::ResponseTopic).value_or("")),
                     "pong", 1, 1, response));
  responder->expect<mqtt::Puback>();
  auto reply = c.expect<mqtt::Publish>();
  EXPECT_EQ(reply.payload, "pong");
  EXPECT_EQ(reply.properties.string(PropertyId::CorrelationData), "id-1");
}

TEST_F(Mqtt5Test, MalformedPacketsGetDisconnectWithTheCodecsReasonCode) {
  struct Case {
    std::string name;
    std::string bytes;  // sent after a successful MQTT 5 CONNECT
    ReasonCode expected;
  };
  auto publish = [](mqtt::Properties properties, std::string topic = "t") {
    return mqtt::encode(publish_packet(std::move(topic), "x", 0, 0, std::move(properties)),
                        mqtt::ProtocolVersion::V5);
  };
  mqtt::Properties alias_too_big;
  alias_too_big.add(PropertyId::TopicAlias, 65);
  mqtt::Properties alias_unknown;
  alias_unknown.add(PropertyId::TopicAlias, 3);
  mqtt::Properties subscription_id;
  subscription_id.add(PropertyId::SubscriptionIdentifier, 4);
  std::vector<Case> cases{
      // PUBLISH, property Session Expiry Interval (0x11, not allowed in PUBLISH), length 5.
      {"property not allowed", std::string("\x30\x09\x00\x01t\x05\x11\x00\x00\x00\x01", 11),
       ReasonCode::MalformedPacket},
      {"reserved flags", std::string("\x80\x02\x00\x01", 4), ReasonCode::MalformedPacket},
      // PUBLISH "t" with Topic Alias 0 (the codec refuses to encode it).
      {"topic alias 0", std::string("\x30\x08\x00\x01t\x03\x23\x00\x00x", 10),
       ReasonCode::ProtocolError},
      {"topic alias over the maximum", publish(alias_too_big), ReasonCode::TopicAliasInvalid},
      {"topic alias never set", publish(alias_unknown, ""), ReasonCode::ProtocolError},
      {"subscription identifier from a client", publish(subscription_id),
       ReasonCode::ProtocolError},
      {"session expiry set by DISCONNECT after CONNECT said 0",
       std::string("\xe0\x07\x00\x05\x11\x00\x00\x00\x3c", 9), ReasonCode::ProtocolError},
      {"second CONNECT", mqtt::encode(make_connect_v5("again")), ReasonCode::ProtocolError},
      {"topic with too many levels", publish({}, "a/b/c/d/e/f/g/h/i/j"),
       ReasonCode::TopicNameInvalid},
      {"packet too large",
       mqtt::encode(publish_packet("t", std::string(40 * 1024, 'x'), 0), mqtt::ProtocolVersion::V5),
       ReasonCode::PacketTooLarge},
  };
  for (const auto& test : cases) {
    auto c = connected5("bad");
    c->send_raw(test.bytes);
    auto packet = c->receive();
    ASSERT_TRUE(packet.has_value()) << test.name;
    ASSERT_TRUE(std::holds_alternative<mqtt::Disconnect>(*packet))
        << test.name << ": " << mqtt::to_string(mqtt::type_of(*packet));
    const auto& disconnect = std::get<mqtt::Disconnect>(*packet);
    EXPECT_EQ(disconnect.reason_code, test.expected) << test.name;
    // What was wrong, in words.
    EXPECT_FALSE(disconnect.properties.string(PropertyId::ReasonString).value_or("").empty())
        << test.name;
    EXPECT_TRUE(c->closed_by_peer()) << test.name;
  }
  // The hub goes on serving the others.
  auto fine = connected5("fine");
  round_trip(*fine);
}

TEST_F(Mqtt5Test, AMalformedMqtt5ConnectGetsAConnackWithTheReasonCode) {
  // CONNECT level 5 whose properties hold a Topic Alias (0x23), which CONNECT may not carry.
  const std::string bytes("\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x03\x23\x00\x01\x00\x01x", 19);
  RawClient c(port_);
  c.set_version(mqtt::ProtocolVersion::V5);
  c.send_raw(bytes);
  auto ack = c.expect<mqtt::Connack>();
  EXPECT_EQ(ack.reason_code, ReasonCode::MalformedPacket);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(Mqtt5Test, TheHubDisconnectsWithAReasonCode) {
  // Session taken over.
  auto first = connected5("twin");
  auto second = connected5("twin");
  EXPECT_EQ(disconnect_reason(*first), ReasonCode::SessionTakenOver);
  EXPECT_TRUE(first->closed_by_peer());
  round_trip(*second);

  // Keep alive timeout: 1 s, closed after 1.5 s without a packet.
  RawClient idle(port_);
  auto connect = make_connect_v5("idle");
  connect.keep_alive = 1;
  idle.connect(connect);
  auto packet = idle.receive(4s);
  ASSERT_TRUE(packet.has_value());
  ASSERT_TRUE(std::holds_alternative<mqtt::Disconnect>(*packet));
  EXPECT_EQ(std::get<mqtt::Disconnect>(*packet).reason_code, ReasonCode::KeepAliveTimeout);

  // Server shutting down.
  auto last = connected5("last");
  hub_->stop(SIGTERM);
  EXPECT_EQ(disconnect_reason(*last), ReasonCode::ServerShuttingDown);
  EXPECT_TRUE(last->closed_by_peer());
  EXPECT_EQ(disconnect_reason(*second), ReasonCode::ServerShuttingDown);
}

TEST_F(Mqtt5Test, DisconnectWithWillMessagePublishesTheWill) {
  auto watcher = connected5("watcher");
  subscribe(*watcher, {{"wills/#", 0}});
  for (auto reason : {ReasonCode::NormalDisconnection, ReasonCode::DisconnectWithWillMessage}) {
    RawClient c(port_);
    auto connect = make_connect_v5("mortal");
    mqtt::Properties will_properties;
    will_properties.add_user("cause", "test").add(PropertyId::ContentType, "text/plain");
    connect.will = mqtt::Will{"wills/mortal", "gone", 0, false, will_properties};
    c.connect(connect);
    c.send(mqtt::Disconnect{reason, {}});
    EXPECT_TRUE(c.closed_by_peer());
    if (reason == ReasonCode::NormalDisconnection) {
      EXPECT_TRUE(watcher->silent_for(300ms));
    } else {
      auto will = watcher->expect<mqtt::Publish>();
      EXPECT_EQ(will.payload, "gone");
      EXPECT_EQ(will.properties.user_properties(),
                (std::vector<mqtt::StringPair>{{"cause", "test"}}));
      EXPECT_EQ(will.properties.string(PropertyId::ContentType), "text/plain");
    }
  }
}

TEST_F(Mqtt5Test, ReceiveMaximumOfTheClientBoundsTheMessagesInFlight) {
  RawClient sub(port_);
  auto connect = make_connect_v5("narrow");
  connect.properties.add(PropertyId::ReceiveMaximum, 2);
  sub.connect(connect);
  sub.send(mqtt::Subscribe{1, {{"flow", 1}}});
  sub.expect<mqtt::Suback>();
  auto pub = connected5("pub");
  for (std::uint16_t i = 1; i <= 5; ++i) {
    pub->send(publish_packet("flow", std::to_string(i), 1, i));
    pub->expect<mqtt::Puback>();
  }
  std::vector<mqtt::Publish> got;
  got.push_back(sub.expect<mqtt::Publish>());
  got.push_back(sub.expect<mqtt::Publish>());
  EXPECT_TRUE(sub.silent_for(300ms)) << "more than Receive Maximum in flight";
  std::vector<std::string> payloads;
  while (payloads.size() < 5) {
    if (got.empty()) got.push_back(sub.expect<mqtt::Publish>());
    payloads.push_back(got.front().payload);
    sub.send(mqtt::Puback{got.front().packet_id});
    got.erase(got.begin());
  }
  EXPECT_EQ(payloads, (std::vector<std::string>{"1", "2", "3", "4", "5"}));
}

TEST_F(Mqtt5Test, MessagesLargerThanTheClientsMaximumPacketSizeAreDroppedForIt) {
  RawClient small(port_);
  auto connect = make_connect_v5("small");
  connect.properties.add(PropertyId::MaximumPacketSize, 64);
  small.connect(connect);
  small.send(mqtt::Subscribe{1, {{"size/#", 1}}});
  small.expect<mqtt::Suback>();
  auto big = connected5("big");
  subscribe(*big, {{"size/#", 1}});
  auto pub = connected5("pub");
  for (std::uint8_t qos : {0, 1}) {
    pub->send(publish_packet("size/large", std::string(100, 'x'), qos, 1));
    pub->send(publish_packet("size/small", "fits", qos, 2));
    if (qos == 1) {
      pub->expect<mqtt::Puback>();
      pub->expect<mqtt::Puback>();
    }
    auto got = small.expect<mqtt::Publish>();
    EXPECT_EQ(got.topic, "size/small") << "QoS " << int(qos);
    if (qos == 1) small.send(mqtt::Puback{got.packet_id});
    for (const char* topic : {"size/large", "size/small"}) {
      auto m = big->expect<mqtt::Publish>();
      EXPECT_EQ(m.topic, topic);
      if (qos == 1) big->send(mqtt::Puback{m.packet_id});
    }
  }
}

TEST(Mqtt5Restart, APersistentMqtt5SessionLosesNoAcknowledgedQos1MessageOnSigkill) {
  const auto port = free_port();
  HubProcess hub(base_config(port), port);
  {
    RawClient sub(port);
    auto ack = sub.connect(make_connect_v5("keeper", true, 3600));
    ASSERT_FALSE(ack.session_present);
    sub.send(mqtt::Subscribe{1, {{"stream", 1}}});
    sub.expect<mqtt::Suback>();
    sub.send(mqtt::Disconnect{});
  }
  RawClient pub(port);
  auto ack = pub.connect(make_connect_v5("streamer"));
  // Within the hub's Receive Maximum: a new message for each one acknowledged.
  const int window = static_cast<int>(ack.properties.integer(PropertyId::ReceiveMaximum).value());
  constexpr int kTotal = 1000;
  int sent = 0;
  auto send_next = [&] {
    ++sent;
    mqtt::Properties properties;
    properties.add_user("n", std::to_string(sent));
    pub.send(publish_packet("stream", std::to_string(sent), 1, static_cast<std::uint16_t>(sent),
                            properties));
  };
  while (sent < window) send_next();
  std::set<std::string> acked;
  while (acked.size() < 300) {
    auto p = pub.receive(5s);
    ASSERT_TRUE(p.has_value());
    ASSERT_TRUE(std::holds_alternative<mqtt::Puback>(*p));
    acked.insert(std::to_string(std::get<mqtt::Puback>(*p).packet_id));
    if (sent < kTotal) send_next();
  }
  hub.stop(SIGKILL);
  while (auto p = pub.receive(1s)) {
    if (auto* a = std::get_if<mqtt::Puback>(&*p)) acked.insert(std::to_string(a->packet_id));
  }
  pub.close();

  hub.start();
  RawClient sub(port);
  EXPECT_TRUE(sub.connect(make_connect_v5("keeper", false, 3600)).session_present);
  std::set<std::string> received;
  while (auto p = sub.receive(1s)) {
    auto& m = std::get<mqtt::Publish>(*p);
    received.insert(m.payload);
    // Stored with the message: its properties come back too.
    EXPECT_EQ(m.properties.user_properties(), (std::vector<mqtt::StringPair>{{"n", m.payload}}));
    sub.send(mqtt::Puback{m.packet_id});
  }
  expect_none_lost(acked, received);
}

TEST_F(Mqtt5Test, SessionExpiryZeroEndsTheSessionAtDisconnect) {
  {
    auto c = connected5("brief", 0, false);
    subscribe(*c, {{"brief/#", 1}});
    c->send(mqtt::Disconnect{});
  }
  {
    auto c = connected5("lasting", 600, false);
    subscribe(*c, {{"lasting/#", 1}});
    c->send(mqtt::Disconnect{});
  }
  auto pub = connected5("pub");
  pub->send(publish_packet("lasting/x", "kept", 1, 1));
  pub->expect<mqtt::Puback>();
  RawClient brief(port_);
  EXPECT_FALSE(brief.connect(make_connect_v5("brief", false, 600)).session_present);
  {
    // Resumed with Session Expiry Interval 0: it ends with this connection.
    RawClient lasting(port_);
    EXPECT_TRUE(lasting.connect(make_connect_v5("lasting", false, 0)).session_present);
    auto got = lasting.expect<mqtt::Publish>();
    EXPECT_EQ(got.payload, "kept");
    lasting.send(mqtt::Puback{got.packet_id});
    lasting.send(mqtt::Disconnect{});
    EXPECT_TRUE(lasting.closed_by_peer());
  }
  std::this_thread::sleep_for(300ms);  // the hub lets the session go after closing the socket
  RawClient again(port_);
  EXPECT_FALSE(again.connect(make_connect_v5("lasting", false, 600)).session_present);
}

namespace {

std::string paho_v5_client_path() {
  auto path = python_client_path();
  return path.substr(0, path.rfind('/')) + "/paho_v5_client.py";
}

}  // namespace

TEST_F(Mqtt5Test, PahoMqtt5ClientsAndMixedVersions) {
  const std::string port = std::to_string(port_);
  for (std::string pub : {"5", "3"}) {
    for (std::string sub : {"5", "3"}) {
      for (bool retain : {false, true}) {
        std::vector<std::string> argv{"/usr/bin/python3", paho_v5_client_path(),
                                      "--port",           port,
                                      "--pub-version",    pub,
                                      "--sub-version",    sub};
        if (retain) argv.push_back("--retain");
        auto result = run_to_end(hub_->dir(), argv, 20s);
        const std::string what = "pub " + pub + " sub " + sub + (retain ? " retained" : "");
        ASSERT_EQ(result.code, 0) << what << ": " << result.output;
        auto got = nlohmann::json::parse(result.output.substr(result.output.find('{')));
        EXPECT_EQ(got["payload"], "hello from " + pub) << what;
        EXPECT_EQ(got["retain"], retain) << what;
        const auto& p = got["properties"];
        if (pub == "5" && sub == "5") {
          EXPECT_EQ(p["UserProperty"],
                    nlohmann::json::parse(R"([["first","1"],["second","2"],["first","3"]])"))
              << what;
          EXPECT_EQ(p["PayloadFormatIndicator"], 1) << what;
          EXPECT_EQ(p["ContentType"], "text/plain") << what;
          EXPECT_EQ(p["ResponseTopic"], "paho5/reply") << what;
          EXPECT_EQ(p["CorrelationData"], "request-7") << what;
          ASSERT_TRUE(p.contains("MessageExpiryInterval")) << what;
          EXPECT_LE(p["MessageExpiryInterval"].get<int>(), 3600) << what;
          EXPECT_GE(p["MessageExpiryInterval"].get<int>(), 3590) << what;
        } else {
          EXPECT_FALSE(p.contains("UserProperty")) << what;
        }
      }
    }
  }
}

TEST_F(Mqtt5Test, MosquittoClientsInMqtt5Mode) {
  const std::string port = std::to_string(port_);
  // A retained message with a user property and a content type from mosquitto_pub -V mqttv5...
  ASSERT_EQ(baetyl::testing::mosquitto_pub(port_, "mosq/five", "from mosquitto", 1,
                                           {"-u", "test", "-P", "hahaha", "-V", "mqttv5", "-r",
                                            "-D", "publish", "user-property", "origin", "mosquitto",
                                            "-D", "publish", "content-type", "text/plain"}),
            0);
  // ... read back by mosquitto_sub -V mqttv5, which prints the properties.
  auto five = run_to_end(hub_->dir(),
                         {"mosquitto_sub", "-p", port, "-u", "test", "-P", "hahaha", "-V", "mqttv5",
                          "-t", "mosq/#", "-C", "1", "-W", "5", "-F", "%t|%p|%P|%C"},
                         20s);
  EXPECT_EQ(five.code, 0) << five.output;
  EXPECT_NE(five.output.find("mosq/five|from mosquitto|origin:mosquitto|text/plain"),
            std::string::npos)
      << five.output;
  // And by a 3.1.1 mosquitto_sub, without them.
  auto three = run_to_end(hub_->dir(),
                          {"mosquitto_sub", "-p", port, "-u", "test", "-P", "hahaha", "-t",
                           "mosq/#", "-C", "1", "-W", "5", "-F", "%t|%p"},
                          20s);
  EXPECT_EQ(three.code, 0) << three.output;
  EXPECT_NE(three.output.find("mosq/five|from mosquitto"), std::string::npos) << three.output;
  // A refused login is a CONNACK mosquitto_pub understands in MQTT 5.
  EXPECT_NE(baetyl::testing::mosquitto_pub(port_, "mosq/x", "x", 0,
                                           {"-u", "test", "-P", "wrong", "-V", "mqttv5"}),
            0);
}

TEST_F(Mqtt5Test, NoLocalRetainAsPublishedAndRetainHandling) {
  auto c = connected5("options");
  mqtt::Subscription no_local{"nl/#", 1};
  no_local.no_local = true;
  subscribe(*c, {no_local});
  c->send(publish_packet("nl/own", "mine", 1, 1));
  c->expect<mqtt::Puback>();
  auto other = connected5("other");
  other->send(publish_packet("nl/other", "theirs", 1, 1));
  other->expect<mqtt::Puback>();
  auto got = c->expect<mqtt::Publish>();
  EXPECT_EQ(got.payload, "theirs");  // not "mine"
  c->send(mqtt::Puback{got.packet_id});

  // Retain As Published: a live retained message keeps its flag only for that subscription.
  mqtt::Subscription rap{"rap/#", 0};
  rap.retain_as_published = true;
  auto with = connected5("with");
  subscribe(*with, {rap});
  auto without = connected5("without");
  subscribe(*without, {{"rap/#", 0}});
  other->send(publish_packet("rap/x", "live", 0, 0, {}, true));
  EXPECT_TRUE(with->expect<mqtt::Publish>().retain);
  EXPECT_FALSE(without->expect<mqtt::Publish>().retain);

  // Retain Handling: 0 at every SUBSCRIBE, 1 only when the subscription is new, 2 never.
  for (std::uint8_t handling : {0, 1, 2}) {
    auto sub = connected5("handling" + std::to_string(handling));
    mqtt::Subscription s{"rap/#", 0};
    s.retain_handling = handling;
    std::vector<std::string> got_retained;
    for (int round = 0; round < 2; ++round) {
      subscribe(*sub, {s});
      while (auto p = sub->receive(300ms)) {
        if (auto* m = std::get_if<mqtt::Publish>(&*p)) got_retained.push_back(m->payload);
      }
    }
    const std::size_t expected = handling == 0 ? 2 : handling == 1 ? 1 : 0;
    EXPECT_EQ(got_retained.size(), expected) << "Retain Handling " << int(handling);
  }
}

TEST_F(Mqtt5Test, SubscriptionIdentifiersComeWithEveryMatchingDelivery) {
  auto c = connected5("ids", 600);
  mqtt::Properties seven;
  seven.add(PropertyId::SubscriptionIdentifier, 7);
  subscribe(*c, {{"sid/#", 1}}, seven);
  mqtt::Properties big;
  big.add(PropertyId::SubscriptionIdentifier, 268435455);  // the largest
  subscribe(*c, {{"sid/a", 0}}, big);
  subscribe(*c, {{"sid/b", 0}});  // none
  auto pub = connected("pub3");
  for (std::uint8_t qos : {0, 1}) {
    pub->send(publish_packet("sid/a", "a", qos, 1));
    pub->send(publish_packet("sid/b", "b", qos, 2));
    if (qos == 1) {
      pub->expect<mqtt::Puback>();
      pub->expect<mqtt::Puback>();
    }
    auto a = c->expect<mqtt::Publish>();
    EXPECT_EQ(a.properties.subscription_identifiers(), (std::vector<std::uint32_t>{7, 268435455}))
        << "QoS " << int(qos);
    auto b = c->expect<mqtt::Publish>();
    EXPECT_EQ(b.properties.subscription_identifiers(), std::vector<std::uint32_t>{7});
    for (auto* m : {&a, &b}) {
      if (m->qos == 1) c->send(mqtt::Puback{m->packet_id});
    }
  }
  // Kept with the persistent session, across a restart of the hub too.
  c->send(mqtt::Disconnect{});
  hub_->stop(SIGTERM);
  hub_->start();
  RawClient again(port_);
  EXPECT_TRUE(again.connect(make_connect_v5("ids", false, 600)).session_present);
  pub = connected("pub3");
  pub->send(publish_packet("sid/a", "after", 1, 3));
  pub->expect<mqtt::Puback>();
  auto got = again.expect<mqtt::Publish>();
  EXPECT_EQ(got.properties.subscription_identifiers(), (std::vector<std::uint32_t>{7, 268435455}));
}

TEST_F(Mqtt5Test, ExpiredMessagesAreNeverDeliveredAndTheRestCarryTheTimeLeft) {
  {
    auto away = connected5("away", 600);
    subscribe(*away, {{"exp/#", 1}});
    away->send(mqtt::Disconnect{});
    EXPECT_TRUE(away->closed_by_peer());
  }
  // Offline for sure: what was already sent to a connection may be sent again once expired.
  std::this_thread::sleep_for(300ms);
  auto pub = connected5("pub");
  mqtt::Properties short_life;
  short_life.add(PropertyId::MessageExpiryInterval, 1);
  mqtt::Properties long_life;
  long_life.add(PropertyId::MessageExpiryInterval, 100);
  pub->send(publish_packet("exp/short", "short", 1, 1, short_life));
  pub->send(publish_packet("exp/long", "long", 1, 2, long_life));
  pub->send(publish_packet("exp/retained", "r", 1, 3, short_life, true));
  for (int i = 0; i < 3; ++i) pub->expect<mqtt::Puback>();
  std::this_thread::sleep_for(2100ms);

  RawClient away(port_);
  EXPECT_TRUE(away.connect(make_connect_v5("away", false, 600)).session_present);
  auto got = away.expect<mqtt::Publish>();
  EXPECT_EQ(got.payload, "long");  // "short" and "r" expired while it was away
  auto left = got.properties.integer(PropertyId::MessageExpiryInterval);
  ASSERT_TRUE(left.has_value());
  EXPECT_LE(*left, 98u);
  EXPECT_GE(*left, 96u);
  away.send(mqtt::Puback{got.packet_id});
  EXPECT_TRUE(away.silent_for(300ms));

  // The expired retained message is gone for new subscribers too.
  auto late = connected5("late");
  subscribe(*late, {{"exp/#", 1}});
  EXPECT_TRUE(late->silent_for(300ms));
}

TEST_F(Mqtt5Test, SessionExpiryIntervalIsHonoured) {
  for (const char* id : {"two", "never", "ended"}) {
    const std::uint32_t expiry = std::string(id) == "two" ? 2 : kNever;
    auto c = connected5(id, expiry);
    subscribe(*c, {{"se/#", 1}});
    if (std::string(id) == "ended") {
      // DISCONNECT may shorten it to 0: the session ends now.
      mqtt::Disconnect d;
      d.properties.add(PropertyId::SessionExpiryInterval, 0);
      c->send(d);
    } else {
      c->send(mqtt::Disconnect{});
    }
    EXPECT_TRUE(c->closed_by_peer());
  }
  // The hub closes the socket before it lets the session go: give it a moment.
  std::this_thread::sleep_for(300ms);
  RawClient ended(port_);
  EXPECT_FALSE(ended.connect(make_connect_v5("ended", false, 60)).session_present);
  std::this_thread::sleep_for(3500ms);
  RawClient two(port_);
  EXPECT_FALSE(two.connect(make_connect_v5("two", false, 60)).session_present);
  RawClient never(port_);
  EXPECT_TRUE(never.connect(make_connect_v5("never", false, kNever)).session_present);
}

TEST(Mqtt5Restart, SessionExpiryIsHonouredAcrossARestart) {
  const auto port = free_port();
  HubProcess hub(base_config(port), port);
  // "brief" disconnects and expires while the hub is down; "kept" has time left; "online" is
  // connected when the hub is killed: its interval counts from the restart.
  for (auto [id, expiry] :
       std::vector<std::pair<std::string, std::uint32_t>>{{"brief", 2}, {"kept", 600}}) {
    RawClient c(port);
    c.connect(make_connect_v5(id, true, expiry));
    c.send(mqtt::Subscribe{1, {{"r/#", 1}}});
    c.expect<mqtt::Suback>();
    c.send(mqtt::Disconnect{});
    EXPECT_TRUE(c.closed_by_peer());
  }
  RawClient online(port);
  online.connect(make_connect_v5("online", true, 3));
  online.send(mqtt::Subscribe{1, {{"r/#", 1}}});
  online.expect<mqtt::Suback>();
  {
    RawClient pub(port);
    pub.connect(make_connect_v5("pub"));
    pub.send(publish_packet("r/x", "queued", 1, 1));
    pub.expect<mqtt::Puback>();
  }
  online.expect<mqtt::Publish>();  // not acknowledged
  std::this_thread::sleep_for(1s);
  hub.stop(SIGKILL);
  std::this_thread::sleep_for(1500ms);  // "brief" expires meanwhile
  hub.start();

  RawClient brief(port);
  EXPECT_FALSE(brief.connect(make_connect_v5("brief", false, 60)).session_present);
  RawClient kept(port);
  EXPECT_TRUE(kept.connect(make_connect_v5("kept", false, 600)).session_present);
  EXPECT_EQ(kept.expect<mqtt::Publish>().payload, "queued");
  std::this_thread::sleep_for(1500ms);  // within 3 s of the restart
  {
    RawClient resumed(port);
    auto ack = resumed.connect(make_connect_v5("online", false, 1));
    EXPECT_TRUE(ack.session_present);
    auto again = resumed.expect<mqtt::Publish>();
    EXPECT_EQ(again.payload, "queued");
    EXPECT_TRUE(again.dup);
    resumed.send(mqtt::Disconnect{});
  }
  std::this_thread::sleep_for(2500ms);  // its new interval, 1 s, passed
  RawClient gone(port);
  EXPECT_FALSE(gone.connect(make_connect_v5("online", false, 60)).session_present);
}

TEST_F(Mqtt5Test, TopicAliasesTowardsTheClientWithinItsMaximum) {
  RawClient c(port_);
  auto connect = make_connect_v5("aliased");
  connect.properties.add(PropertyId::TopicAliasMaximum, 2);
  c.connect(connect);
  c.send(mqtt::Subscribe{1, {{"ta/#", 1}}});
  c.expect<mqtt::Suback>();
  auto plain = connected5("plain");  // no Topic Alias Maximum: never gets an alias
  subscribe(*plain, {{"ta/#", 1}});
  auto pub = connected("pub");
  struct Expected {
    std::string topic;  // as sent: empty when the alias stands for it
    std::optional<std::uint32_t> alias;
  };
  const std::vector<std::pair<std::string, Expected>> sequence{
      {"ta/1", {"ta/1", 1}},  {"ta/1", {"", 1}}, {"ta/2", {"ta/2", 2}},
      {"ta/3", {"ta/3", {}}}, {"ta/2", {"", 2}}, {"ta/1", {"", 1}}};
  std::uint16_t id = 0;
  for (std::uint8_t qos : {0, 1}) {
    for (const auto& [topic, expected] : sequence) {
      pub->send(publish_packet(topic, "x", qos, ++id));
      if (qos == 1) pub->expect<mqtt::Puback>();
      auto got = c.expect<mqtt::Publish>();
      // In the second round every alias is known already.
      const std::string want = qos == 1 && expected.alias ? "" : expected.topic;
      EXPECT_EQ(got.topic, want) << topic << " QoS " << int(qos);
      EXPECT_EQ(got.properties.integer(PropertyId::TopicAlias), expected.alias) << topic;
      if (got.qos == 1) c.send(mqtt::Puback{got.packet_id});
      auto other = plain->expect<mqtt::Publish>();
      EXPECT_EQ(other.topic, topic);
      EXPECT_FALSE(other.properties.find(PropertyId::TopicAlias));
      if (other.qos == 1) plain->send(mqtt::Puback{other.packet_id});
    }
  }
}

class SmallReceiveMaximumTest : public Mqtt5Test {
 protected:
  std::string extra_config() const override {
    return "message:\n  ingress:\n    qos1:\n      buffer:\n        size: 2\n";
  }
};

TEST_F(SmallReceiveMaximumTest, AClientBeyondTheHubsReceiveMaximumIsDisconnected) {
  RawClient c(port_);
  auto ack = c.connect(make_connect_v5("eager"));
  EXPECT_EQ(ack.properties.integer(PropertyId::ReceiveMaximum), 2u);
  // QoS 2 stays unacknowledged until PUBCOMP: two are allowed, a third is one too many.
  c.send(publish_packet("rm", "1", 2, 1));
  c.send(publish_packet("rm", "2", 2, 2));
  EXPECT_EQ(c.expect<mqtt::Pubrec>().packet_id, 1);
  EXPECT_EQ(c.expect<mqtt::Pubrec>().packet_id, 2);
  // Completing one makes room for another.
  c.send(mqtt::Pubrel{1});
  EXPECT_EQ(c.expect<mqtt::Pubcomp>().packet_id, 1);
  c.send(publish_packet("rm", "3", 2, 3));
  EXPECT_EQ(c.expect<mqtt::Pubrec>().packet_id, 3);
  c.send(publish_packet("rm", "4", 2, 4));
  EXPECT_EQ(disconnect_reason(c), ReasonCode::ReceiveMaximumExceeded);
  EXPECT_TRUE(c.closed_by_peer());
}

namespace {

// The payloads `c` receives until nothing comes for `quiet`; QoS 1 messages are acknowledged.
std::vector<std::string> drain(RawClient& c, std::chrono::milliseconds quiet = 300ms) {
  std::vector<std::string> payloads;
  while (auto packet = c.receive(quiet)) {
    if (auto* p = std::get_if<mqtt::Publish>(&*packet)) {
      payloads.push_back(p->payload);
      if (p->qos == 1) c.send(mqtt::Puback{p->packet_id});
    }
  }
  return payloads;
}

}  // namespace

TEST_F(Mqtt5Test, SharedSubscriptionsDeliverOncePerGroupInTurn) {
  auto a = connected5("a");
  subscribe(*a, {{"$share/g1/sh/#", 1}});
  auto b = connected("b");  // 3.1.1 clients share too
  b->send(mqtt::Subscribe{1, {{"$share/g1/sh/#", 1}}});
  EXPECT_EQ(b->expect<mqtt::Suback>().return_codes, std::vector<std::uint8_t>{1});
  auto c = connected5("c");
  subscribe(*c, {{"$share/g2/sh/+", 1}});
  auto d = connected5("d");
  subscribe(*d, {{"sh/#", 1}});
  auto pub = connected5("pub");
  for (std::uint16_t i = 1; i <= 10; ++i) {
    pub->send(publish_packet("sh/x", std::to_string(i), 1, i));
    pub->expect<mqtt::Puback>();
  }
  const auto at_a = drain(*a), at_b = drain(*b), at_c = drain(*c), at_d = drain(*d);
  EXPECT_EQ(at_a.size(), 5u);
  EXPECT_EQ(at_b.size(), 5u);
  std::set<std::string> group(at_a.begin(), at_a.end());
  group.insert(at_b.begin(), at_b.end());
  EXPECT_EQ(group.size(), 10u) << "each message once in group g1";
  EXPECT_EQ(at_c.size(), 10u);
  EXPECT_EQ(at_d.size(), 10u);
}

TEST_F(Mqtt5Test, SharedQos1InFlightToAMemberThatGoesIsRedeliveredToAnother) {
  auto keeper = connected("keeper");
  keeper->send(mqtt::Subscribe{1, {{"$share/work/jobs", 1}}});
  keeper->expect<mqtt::Suback>();
  auto pub = connected5("pub");
  std::set<std::string> at_keeper;
  {
    auto quitter = connected5("quitter");
    subscribe(*quitter, {{"$share/work/jobs", 1}});
    for (std::uint16_t i = 1; i <= 4; ++i) {
      pub->send(publish_packet("jobs", "job" + std::to_string(i), 1, i));
      pub->expect<mqtt::Puback>();
    }
    // The quitter gets two of them and acknowledges none, then its connection drops.
    EXPECT_EQ(quitter->expect<mqtt::Publish>().qos, 1);
    EXPECT_EQ(quitter->expect<mqtt::Publish>().qos, 1);
    for (auto& p : drain(*keeper)) at_keeper.insert(p);
    EXPECT_EQ(at_keeper.size(), 2u);
    quitter->close();
  }
  for (auto& p : drain(*keeper, 1s)) at_keeper.insert(p);
  EXPECT_EQ(at_keeper, (std::set<std::string>{"job1", "job2", "job3", "job4"}));
}

TEST_F(Mqtt5Test, SharedSubscriptionsCheckPermissionsOnTheFilterAndGetNoRetainedMessages) {
  auto pub = connected5("pub");
  pub->send(publish_packet("kept/x", "retained", 1, 1, {}, true));
  pub->expect<mqtt::Puback>();
  auto c = connected5("member");
  EXPECT_EQ(subscribe(*c, {{"$share/g/secret/#", 1}, {"$share/g/kept/#", 1}}),
            (std::vector<std::uint8_t>{0x87, 1}));
  EXPECT_TRUE(c->silent_for(300ms)) << "no retained message for a shared subscription";
  auto old = connected("old");
  old->send(mqtt::Subscribe{1, {{"$share//x", 1}, {"$share/g", 1}}});  // no group, no filter
  EXPECT_EQ(old->expect<mqtt::Suback>().return_codes, (std::vector<std::uint8_t>{0x80, 0x80}));
  // Unsubscribing leaves the group.
  c->send(mqtt::Unsubscribe{7, {"$share/g/kept/#"}});
  EXPECT_EQ(c->expect<mqtt::Unsuback>().reason_codes, std::vector<ReasonCode>{ReasonCode::Success});
  pub->send(publish_packet("kept/y", "live", 1, 2));
  pub->expect<mqtt::Puback>();
  EXPECT_TRUE(c->silent_for(300ms));
}

namespace {

// Connects `id` (MQTT 5 with `expiry`, or 3.1.1 with clean session 0 when `v5` is false),
// subscribes it to `filter` at QoS 1 and disconnects it.
void persistent_member(std::uint16_t port, const std::string& id, const std::string& filter,
                       bool v5, std::uint32_t expiry = 600) {
  RawClient c(port);
  if (v5) {
    c.connect(make_connect_v5(id, true, expiry));
  } else {
    c.connect(make_connect(id, false));
  }
  c.send(mqtt::Subscribe{1, {{filter, 1}}});
  EXPECT_EQ(c.expect<mqtt::Suback>().return_codes, std::vector<std::uint8_t>{1}) << id;
  c.send(mqtt::Disconnect{});
  EXPECT_TRUE(c.closed_by_peer()) << id;
}

// The QoS 1 PUBLISH packets `c` receives until nothing comes for `quiet`, not acknowledged.
std::vector<mqtt::Publish> receive_all(RawClient& c, std::chrono::milliseconds quiet = 500ms) {
  std::vector<mqtt::Publish> got;
  while (auto packet = c.receive(quiet)) {
    if (auto* p = std::get_if<mqtt::Publish>(&*packet)) got.push_back(std::move(*p));
  }
  return got;
}

std::set<std::string> payloads_of(const std::vector<mqtt::Publish>& packets) {
  std::set<std::string> out;
  for (const auto& p : packets) out.insert(p.payload);
  return out;
}

}  // namespace

TEST_F(Mqtt5Test, ASharedGroupOfOfflinePersistentMembersKeepsItsMessagesForOneMember) {
  persistent_member(port_, "m5", "$share/off/jobs", true);
  persistent_member(port_, "m3", "$share/off/jobs", false);
  {
    // A group whose only member's session ended has no member: its messages are dropped.
    auto clean = connected5("clean");
    subscribe(*clean, {{"$share/gone/jobs", 1}});
    clean->send(mqtt::Disconnect{});
    EXPECT_TRUE(clean->closed_by_peer());
  }
  std::this_thread::sleep_for(200ms);  // the hub detaches the members after their DISCONNECT
  auto pub = connected5("pub");
  for (std::uint16_t i = 1; i <= 6; ++i) {
    pub->send(publish_packet("jobs", "job" + std::to_string(i), 1, i));
    pub->expect<mqtt::Puback>();
  }
  std::set<std::string> unacknowledged;
  {
    RawClient m5(port_);
    EXPECT_TRUE(m5.connect(make_connect_v5("m5", false, 600)).session_present);
    auto got = receive_all(m5);
    EXPECT_EQ(payloads_of(got),
              (std::set<std::string>{"job1", "job2", "job3", "job4", "job5", "job6"}));
    EXPECT_EQ(got.size(), 6u) << "each held message once";
    // Three acknowledged; the connection then drops with the others unacknowledged.
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (i < 3) {
        m5.send(mqtt::Puback{got[i].packet_id});
      } else {
        unacknowledged.insert(got[i].payload);
      }
    }
    round_trip(m5);
    m5.close();
  }
  std::this_thread::sleep_for(200ms);
  {
    // The other member, offline meanwhile, gets what the first did not acknowledge, once.
    RawClient m3(port_);
    EXPECT_TRUE(m3.connect(make_connect("m3", false)).session_present);
    auto got = receive_all(m3);
    EXPECT_EQ(payloads_of(got), unacknowledged);
    EXPECT_EQ(got.size(), unacknowledged.size());
    for (const auto& p : got) m3.send(mqtt::Puback{p.packet_id});
    round_trip(m3);
  }
  RawClient m5(port_);
  EXPECT_TRUE(m5.connect(make_connect_v5("m5", false, 600)).session_present);
  EXPECT_TRUE(m5.silent_for(500ms)) << "nothing delivered twice";
  RawClient clean(port_);
  clean.connect(make_connect_v5("clean"));
  subscribe(clean, {{"$share/gone/jobs", 1}});
  EXPECT_TRUE(clean.silent_for(300ms)) << "a group without member session keeps nothing";
}

TEST_F(Mqtt5Test, NoSharedQos1MessageIsLostWhileAMemberLeavesUnderLoad) {
  constexpr int kTotal = 3000;
  std::mutex mutex;
  std::set<std::string> done;  // acknowledged by some member
  auto keeper = connected5("keeper");
  subscribe(*keeper, {{"$share/load/jobs", 1}});
  auto quitter = connected("quitter");
  quitter->send(mqtt::Subscribe{1, {{"$share/load/jobs", 1}}});
  quitter->expect<mqtt::Suback>();
  std::atomic<bool> publishing{true};
  std::thread keeping([&] {
    while (true) {
      auto packet = keeper->receive(publishing ? 5s : 1s);
      if (!packet) break;
      if (auto* p = std::get_if<mqtt::Publish>(&*packet)) {
        keeper->send(mqtt::Puback{p->packet_id});
        std::lock_guard lock(mutex);
        done.insert(p->payload);
      }
    }
  });
  std::thread quitting([&] {
    // Acknowledges its first 300, then goes away in the middle of the stream.
    for (int n = 0; n < 300;) {
      auto packet = quitter->receive(5s);
      if (!packet) break;
      if (auto* p = std::get_if<mqtt::Publish>(&*packet)) {
        quitter->send(mqtt::Puback{p->packet_id});
        std::lock_guard lock(mutex);
        done.insert(p->payload);
        ++n;
      }
    }
    quitter->close();
  });
  auto pub = connected5("pub");
  int sent = 0;
  auto send_next = [&] {
    ++sent;
    pub->send(publish_packet("jobs", std::to_string(sent), 1,
                             static_cast<std::uint16_t>(sent % 60000 + 1)));
  };
  while (sent < 50) send_next();
  for (int acked = 0; acked < kTotal; ++acked) {
    ASSERT_TRUE(pub->receive(5s).has_value());
    if (sent < kTotal) send_next();
  }
  publishing = false;
  quitting.join();
  keeping.join();
  std::vector<int> lost;
  for (int i = 1; i <= kTotal; ++i) {
    if (!done.contains(std::to_string(i))) lost.push_back(i);
  }
  EXPECT_TRUE(lost.empty()) << lost.size() << " lost, e.g. " << lost.front();
}

class SmallQueueTest : public Mqtt5Test {
 protected:
  std::string extra_config() const override {
    return "message:\n  egress:\n    qos1:\n      queue:\n        size: 3\n";
  }
};

TEST_F(SmallQueueTest, ASharedGroupHoldsMessagesWithinTheQueueBounds) {
  persistent_member(port_, "member", "$share/few/jobs", true);
  std::this_thread::sleep_for(200ms);
  auto pub = connected5("pub");
  for (std::uint16_t i = 1; i <= 5; ++i) {
    pub->send(publish_packet("jobs", "job" + std::to_string(i), 1, i));
    pub->expect<mqtt::Puback>();
  }
  RawClient member(port_);
  member.connect(make_connect_v5("member", false, 600));
  auto got = receive_all(member);
  EXPECT_EQ(payloads_of(got), (std::set<std::string>{"job1", "job2", "job3"}));
  EXPECT_NE(hub_->output().find("holds 3 messages"), std::string::npos) << "the drops are logged";
}

TEST(Mqtt5Restart, ASharedGroupsHeldAndUnacknowledgedMessagesSurviveASigkill) {
  const auto port = free_port();
  HubProcess hub(base_config(port), port);
  persistent_member(port, "first", "$share/r/jobs", true, 3600);
  persistent_member(port, "second", "$share/r/jobs", false);
  std::this_thread::sleep_for(200ms);
  {
    RawClient pub(port);
    pub.connect(make_connect_v5("pub"));
    for (std::uint16_t i = 1; i <= 5; ++i) {
      pub.send(publish_packet("jobs", "job" + std::to_string(i), 1, i));
      pub.expect<mqtt::Puback>();
    }
  }
  hub.stop(SIGKILL);
  hub.start();
  std::set<std::string> unacknowledged;
  {
    RawClient first(port);
    EXPECT_TRUE(first.connect(make_connect_v5("first", false, 3600)).session_present);
    auto got = receive_all(first);
    EXPECT_EQ(payloads_of(got), (std::set<std::string>{"job1", "job2", "job3", "job4", "job5"}));
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (i < 2) {
        first.send(mqtt::Puback{got[i].packet_id});
      } else {
        unacknowledged.insert(got[i].payload);
      }
    }
    first.send(mqtt::Pingreq{});
    first.expect<mqtt::Pingresp>();
    std::this_thread::sleep_for(300ms);  // acknowledgements are committed in batches
    hub.stop(SIGKILL);
  }
  hub.start();
  RawClient second(port);
  EXPECT_TRUE(second.connect(make_connect("second", false)).session_present);
  auto got = receive_all(second);
  EXPECT_EQ(payloads_of(got), unacknowledged);
  EXPECT_EQ(got.size(), unacknowledged.size());
}

TEST_F(Mqtt5Test, WillDelayIntervalWaitsForTheClientToComeBack) {
  auto watcher = connected5("watcher");
  subscribe(*watcher, {{"wd/#", 0}});
  auto with_delayed_will = [](const std::string& id) {
    auto connect = make_connect_v5(id, true, 60);
    mqtt::Properties properties;
    properties.add(PropertyId::WillDelayInterval, 2);
    connect.will = mqtt::Will{"wd/" + id, "gone", 0, false, properties};
    return connect;
  };
  {
    RawClient back(port_);
    back.connect(with_delayed_will("back"));
    back.close();  // no DISCONNECT: the will is due in 2 s...
  }
  std::this_thread::sleep_for(500ms);
  {
    RawClient again(port_);  // ... but the client comes back before: no will
    EXPECT_TRUE(again.connect(make_connect_v5("back", false, 60)).session_present);
    again.send(mqtt::Disconnect{});
  }
  {
    RawClient away(port_);
    away.connect(with_delayed_will("away"));
    away.close();
  }
  EXPECT_TRUE(watcher->silent_for(1200ms)) << "a will before its delay";
  auto will = watcher->expect<mqtt::Publish>(3s);
  EXPECT_EQ(will.topic, "wd/away");
  EXPECT_TRUE(watcher->silent_for(2500ms)) << "the will of a client that came back";
}

TEST_F(Mqtt5Test, ATakeoverWithinTheWillDelayPublishesTheWillOnlyWhenTheSessionEnds) {
  auto watcher = connected5("watcher");
  subscribe(*watcher, {{"wt/#", 0}});
  auto with_delayed_will = [](const std::string& id) {
    auto connect = make_connect_v5(id, true, 60);
    mqtt::Properties properties;
    properties.add(PropertyId::WillDelayInterval, 2);
    connect.will = mqtt::Will{"wt/" + id, "gone", 0, false, properties};
    return connect;
  };
  // Clean Start 0: the session goes on with the new connection, and the will is not sent.
  RawClient kept(port_);
  kept.connect(with_delayed_will("kept"));
  RawClient kept_again(port_);
  EXPECT_TRUE(kept_again.connect(make_connect_v5("kept", false, 60)).session_present);
  EXPECT_EQ(disconnect_reason(kept), ReasonCode::SessionTakenOver);
  EXPECT_TRUE(watcher->silent_for(3s)) << "a will of a session taken over within its delay";
  // Clean Start 1: the session ends, so its will is sent at once.
  RawClient ended(port_);
  ended.connect(with_delayed_will("ended"));
  RawClient ended_again(port_);
  EXPECT_FALSE(ended_again.connect(make_connect_v5("ended", true, 60)).session_present);
  EXPECT_EQ(disconnect_reason(ended), ReasonCode::SessionTakenOver);
  EXPECT_EQ(watcher->expect<mqtt::Publish>(1s).topic, "wt/ended");
  // MQTT 3.1.1 has no delay: a takeover publishes the will, also when the session goes on.
  RawClient old(port_);
  auto connect = make_connect("old", false);
  connect.will = mqtt::Will{"wt/old", "gone", 0, false};
  old.connect(connect);
  RawClient old_again(port_);
  EXPECT_TRUE(old_again.connect(make_connect("old", false)).session_present);
  EXPECT_EQ(watcher->expect<mqtt::Publish>(1s).topic, "wt/old");
  EXPECT_TRUE(watcher->silent_for(500ms));
}

TEST(Mqtt5Restart, AWillTakenOverWithinItsDelayIsNotPublishedAfterASigkill) {
  const auto port = free_port();
  HubProcess hub(base_config(port), port);
  persistent_member(port, "watcher", "wr/#", true);  // keeps what comes while it is away
  RawClient first(port);
  auto connect = make_connect_v5("heir", true, 600);
  mqtt::Properties properties;
  properties.add(PropertyId::WillDelayInterval, 1);
  connect.will = mqtt::Will{"wr/heir", "gone", 1, false, properties};
  first.connect(connect);
  RawClient second(port);  // no will of its own
  EXPECT_TRUE(second.connect(make_connect_v5("heir", false, 600)).session_present);
  EXPECT_EQ(disconnect_reason(first), ReasonCode::SessionTakenOver);
  std::this_thread::sleep_for(300ms);  // the store commits the change
  hub.stop(SIGKILL);
  hub.start();
  RawClient watcher(port);
  EXPECT_TRUE(watcher.connect(make_connect_v5("watcher", false, 600)).session_present);
  EXPECT_TRUE(watcher.silent_for(2s)) << "the will of the connection taken over";
  EXPECT_EQ(hub.output().find("publishing the will of 'heir'"), std::string::npos);
}
