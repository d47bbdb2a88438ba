// End-to-end tests: the real baetyl-hub binary on a free loopback port, with mosquitto clients
// and hand-played MQTT peers.
#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <set>
#include <thread>

#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/tls.h"
#include "http_test_server.h"
#include "hub_test_support.h"

#include <nlohmann/json.hpp>

using namespace baetyl::hub::testing;
using namespace std::chrono_literals;
namespace mqtt = baetyl::mqtt;
using baetyl::testing::free_port;
using baetyl::testing::MosquittoSubscriber;
using baetyl::testing::SubscriberOptions;

namespace {

// Subscribes `c` to `filter` at `qos` and expects the SUBACK to grant `expected`.
void subscribe(RawClient& c, const std::string& filter, std::uint8_t qos, std::uint8_t expected) {
  c.send(mqtt::Subscribe{1, {{filter, qos}}});
  auto ack = c.expect<mqtt::Suback>();
  EXPECT_EQ(ack.return_codes, std::vector<std::uint8_t>{expected}) << filter;
}

// Connects `c` as the new persistent session `id` and subscribes it to `filter` at `qos`.
void subscribe_persistent(RawClient& c, const std::string& id, const std::string& filter,
                          std::uint8_t qos) {
  ASSERT_FALSE(c.connect(make_connect(id, false)).session_present) << id;
  subscribe(c, filter, qos, qos);
}

// Stops the hub with SIGTERM, expecting a clean exit, and starts it again.
void restart(HubProcess& hub) {
  EXPECT_EQ(hub.stop(SIGTERM), 0);
  hub.start();
}

// The topics of the PUBLISH packets `c` receives until nothing comes for `quiet`, sorted;
// QoS 1 messages are acknowledged.
std::vector<std::string> received_topics(RawClient& c, std::chrono::milliseconds quiet = 300ms) {
  std::vector<std::string> topics;
  while (auto packet = c.receive(quiet)) {
    auto* p = std::get_if<mqtt::Publish>(&*packet);
    if (p == nullptr) {
      ADD_FAILURE() << "expected PUBLISH, got " << mqtt::to_string(mqtt::type_of(*packet));
      continue;
    }
    topics.push_back(p->topic);
    if (p->qos == 1) c.send(mqtt::Puback{p->packet_id});
  }
  std::sort(topics.begin(), topics.end());
  return topics;
}

// True when the hub's output contains `text` within `timeout`.
bool logged(const HubProcess& hub, const std::string& text,
            std::chrono::milliseconds timeout = 2s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (hub.output().find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

void replace_once(std::string& text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  text.replace(at, from.size(), to);
}

// The `test` principal's subscriptions have a deny list (secret/# and $secret/#), and routes
// republish routed/in on secret/routed and open/routed.
std::string deny_config(std::uint16_t port, const std::string& more_denied = "") {
  std::string config = base_config(port);
  replace_once(config, "        deny: ['secret/#']\n",
               "        deny: ['secret/#', '$secret/#'" + more_denied + "]\n");
  replace_once(config, "subscriptions:\n",
               "subscriptions:\n"
               "  - {source: {topic: routed/in, qos: 1}, target: {topic: secret/routed, qos: 1}}\n"
               "  - {source: {topic: routed/in, qos: 1}, target: {topic: open/routed, qos: 1}}\n");
  return config;
}

class DenyTest : public HubTest {
 protected:
  void SetUp() override {
    port_ = free_port();
    hub_ = std::make_unique<HubProcess>(deny_config(port_), port_);
  }

  // Publishes at QoS 1 from `c` and waits for the PUBACK.
  void publish1(RawClient& c, const std::string& topic, bool retain = false) {
    c.send(publish_packet(topic, "m", 1, ++packet_id_, {}, retain));
    EXPECT_EQ(c.expect<mqtt::Puback>().packet_id, packet_id_) << topic;
  }

  std::uint16_t packet_id_ = 0;
};

}  // namespace

TEST_F(HubTest, RoutingWalkthroughWithMosquittoClients) {
  SubscriberOptions options;
  options.topic = "t/#";
  options.username = "test";
  options.password = "hahaha";
  options.count = 2;
  MosquittoSubscriber sub1(port_, options);
  options.topic = "t";
  options.count = 1;
  MosquittoSubscriber sub2(port_, options);
  ASSERT_EQ(baetyl::testing::mosquitto_pub(port_, "t", "This is a new message.", 1,
                                           {"-u", "test", "-P", "hahaha"}),
            0);
  auto got = sub1.wait_for(2, 5s);
  ASSERT_EQ(got.size(), 2u);
  std::set<std::string> topics;
  for (const auto& m : sub1.received()) topics.insert(m.topic);
  EXPECT_EQ(topics, (std::set<std::string>{"t", "t/topic"}));
  EXPECT_EQ(sub2.wait_for(1, 5s), std::vector<std::string>{"This is a new message."});
}

TEST_F(HubTest, AuthenticationOutcomes) {
  {
    RawClient c(port_);
    EXPECT_EQ(c.connect(make_connect("ok")).return_code, mqtt::ConnectReturnCode::Accepted);
  }
  {
    RawClient c(port_);
    EXPECT_EQ(c.connect(make_connect("bad", true, "test", "wrong")).return_code,
              mqtt::ConnectReturnCode::BadUsernameOrPassword);
    EXPECT_TRUE(c.closed_by_peer());
  }
  {
    RawClient c(port_);
    EXPECT_EQ(c.connect(make_connect("nobody", true, "nobody", "x")).return_code,
              mqtt::ConnectReturnCode::BadUsernameOrPassword);
  }
  {
    RawClient c(port_);
    EXPECT_EQ(c.connect(make_connect("anon", true, "", "")).return_code,
              mqtt::ConnectReturnCode::NotAuthorized);
    EXPECT_TRUE(c.closed_by_peer());
  }
  {
    RawClient c(port_);  // username without password and no client certificate
    EXPECT_EQ(c.connect(make_connect("nopw", true, "test", "")).return_code,
              mqtt::ConnectReturnCode::BadUsernameOrPassword);
  }
  EXPECT_NE(baetyl::testing::mosquitto_pub(port_, "a", "x", 0, {"-u", "test", "-P", "no"}), 0);
}

TEST_F(HubTest, ClientIdentifierAndProtocolRules) {
  {
    RawClient c(port_);
    EXPECT_EQ(c.connect(make_connect("bad id!")).return_code,
              mqtt::ConnectReturnCode::IdentifierRejected);
  }
  {
    RawClient c(port_);
    EXPECT_EQ(c.connect(make_connect(std::string(129, 'a'))).return_code,
              mqtt::ConnectReturnCode::IdentifierRejected);
  }
  {
    RawClient c(port_);
    EXPECT_EQ(c.connect(make_connect(std::string(128, 'a'))).return_code,
              mqtt::ConnectReturnCode::Accepted);
  }
  {
    RawClient c(port_);
    EXPECT_EQ(c.connect(make_connect("", false)).return_code,
              mqtt::ConnectReturnCode::IdentifierRejected);
  }
  {
    RawClient c(port_);
    EXPECT_EQ(c.connect(make_connect("", true)).return_code, mqtt::ConnectReturnCode::Accepted);
  }
  {
    RawClient c(port_);  // MQTT 3.1
    auto connect = make_connect("v31");
    connect.protocol_name = "MQIsdp";
    connect.protocol_level = 3;
    EXPECT_EQ(c.connect(connect).return_code, mqtt::ConnectReturnCode::Accepted);
  }
  {
    RawClient c(port_);  // MQTT 5 is accepted (see hub_mqtt5_test); level 6 does not exist
    auto connect = make_connect("v6");
    connect.protocol_level = 6;
    EXPECT_EQ(c.connect(connect).return_code, mqtt::ConnectReturnCode::UnacceptableProtocolVersion);
    EXPECT_TRUE(c.closed_by_peer());
  }
}

TEST_F(HubTest, PacketsBeforeConnectAndSecondConnectClose) {
  {
    RawClient c(port_);
    c.send(mqtt::Pingreq{});
    EXPECT_TRUE(c.closed_by_peer());
  }
  auto c = connected("twice");
  c->send(make_connect("twice"));
  EXPECT_TRUE(c->closed_by_peer());
}

TEST_F(HubTest, QoS0And1DeliveryAtTheLowerQoS) {
  auto sub = connected("sub");
  subscribe(*sub, "q/1", 1, 1);
  subscribe(*sub, "q/0", 0, 0);
  auto pub = connected("pub");
  pub->send(publish_packet("q/1", "one", 1, 7));
  EXPECT_EQ(pub->expect<mqtt::Puback>().packet_id, 7);
  auto m = sub->expect<mqtt::Publish>();
  EXPECT_EQ(m.topic, "q/1");
  EXPECT_EQ(m.payload, "one");
  EXPECT_EQ(m.qos, 1);
  EXPECT_FALSE(m.retain);
  sub->send(mqtt::Puback{m.packet_id});
  pub->send(publish_packet("q/0", "zero", 1, 8));  // QoS 1 to a QoS 0 subscription
  EXPECT_EQ(pub->expect<mqtt::Puback>().packet_id, 8);
  m = sub->expect<mqtt::Publish>();
  EXPECT_EQ(m.payload, "zero");
  EXPECT_EQ(m.qos, 0);
  pub->send(publish_packet("q/1", "downgraded", 0));  // QoS 0 to a QoS 1 subscription
  m = sub->expect<mqtt::Publish>();
  EXPECT_EQ(m.payload, "downgraded");
  EXPECT_EQ(m.qos, 0);
  pub->send(mqtt::Pingreq{});
  pub->expect<mqtt::Pingresp>();
}

// A subscriber that keeps most of the in-flight window (100) unacknowledged and acknowledges
// the oldest only when more arrive still gets everything: a full window is refilled with what
// it acknowledged, not only once half of it is.
TEST_F(HubTest, SubscriberKeepingMostOfTheWindowUnacknowledgedGetsEverything) {
  auto sub = connected("lazy");
  subscribe(*sub, "lazy/t", 1, 1);
  auto pub = connected("lazy-pub");
  constexpr int kMessages = 300;
  for (int i = 1; i <= kMessages; ++i) {
    pub->send(publish_packet("lazy/t", std::to_string(i), 1, static_cast<std::uint16_t>(i)));
  }
  std::deque<std::uint16_t> held;
  int received = 0;
  while (received < kMessages) {
    auto packet = sub->receive(3s);
    ASSERT_TRUE(packet) << "stalled after " << received << " of " << kMessages;
    auto* m = std::get_if<mqtt::Publish>(&*packet);
    if (m == nullptr) continue;
    EXPECT_EQ(m->payload, std::to_string(++received));
    held.push_back(m->packet_id);
    while (held.size() > 90) {
      sub->send(mqtt::Puback{held.front()});
      held.pop_front();
    }
  }
}

TEST_F(HubTest, QoS2BothWays) {
  auto sub = connected("sub2");
  subscribe(*sub, "q2", 2, 2);
  auto pub = connected("pub2");
  pub->send(publish_packet("q2", "exactly once", 2, 11));
  EXPECT_EQ(pub->expect<mqtt::Pubrec>().packet_id, 11);
  // A duplicate before PUBREL is acknowledged but not delivered again.
  auto dup = publish_packet("q2", "exactly once", 2, 11);
  dup.dup = true;
  pub->send(dup);
  EXPECT_EQ(pub->expect<mqtt::Pubrec>().packet_id, 11);
  pub->send(mqtt::Pubrel{11});
  EXPECT_EQ(pub->expect<mqtt::Pubcomp>().packet_id, 11);

  auto m = sub->expect<mqtt::Publish>();
  EXPECT_EQ(m.qos, 2);
  EXPECT_EQ(m.payload, "exactly once");
  sub->send(mqtt::Pubrec{m.packet_id});
  EXPECT_EQ(sub->expect<mqtt::Pubrel>().packet_id, m.packet_id);
  sub->send(mqtt::Pubcomp{m.packet_id});
  EXPECT_TRUE(sub->silent_for(300ms));
}

TEST_F(HubTest, SubackRefusesDeniedAndInvalidFilters) {
  auto c = connected("acl");
  c->send(mqtt::Subscribe{3,
                          {{"ok/#", 1},
                           {"secret/x", 0},
                           {"a/b/c/d/e/f/g/h/i/j", 0},
                           {std::string(256, 'x'), 0},
                           {"secret/#", 1},
                           {"#", 2}}});
  auto ack = c->expect<mqtt::Suback>();
  EXPECT_EQ(ack.packet_id, 3);
  // '#' overlaps the denied secret/#: granted, secret/... is filtered at delivery.
  EXPECT_EQ(ack.return_codes, (std::vector<std::uint8_t>{1, 0x80, 0x80, 0x80, 0x80, 2}));

  RawClient limited(port_);
  ASSERT_EQ(limited.connect(make_connect("lim", true, "limited", "pw")).return_code,
            mqtt::ConnectReturnCode::Accepted);
  // limited/# is partly permitted (limited/+): granted, delivered only on limited/+.
  limited.send(mqtt::Subscribe{4, {{"limited/a", 1}, {"limited/#", 1}, {"other", 0}}});
  EXPECT_EQ(limited.expect<mqtt::Suback>().return_codes, (std::vector<std::uint8_t>{1, 1, 0x80}));
  // A denied publish is acknowledged and dropped.
  auto sub = connected("watch");
  subscribe(*sub, "other", 0, 0);
  subscribe(*sub, "limited/#", 0, 0);
  subscribe(*sub, "forbidden/#", 0, 0);
  limited.send(publish_packet("other", "dropped", 1, 5));
  EXPECT_EQ(limited.expect<mqtt::Puback>().packet_id, 5);
  c->send(publish_packet("forbidden/x", "dropped", 0));
  limited.send(publish_packet("limited/a", "allowed", 0));
  auto m = sub->expect<mqtt::Publish>();
  EXPECT_EQ(m.payload, "allowed");
}

TEST_F(HubTest, UnsubscribeStopsDelivery) {
  auto c = connected("unsub");
  subscribe(*c, "u", 0, 0);
  c->send(mqtt::Unsubscribe{9, {"u"}});
  EXPECT_EQ(c->expect<mqtt::Unsuback>().packet_id, 9);
  c->send(publish_packet("u", "x", 0));
  c->send(mqtt::Pingreq{});
  c->expect<mqtt::Pingresp>();  // no PUBLISH before the PINGRESP
}

TEST_F(HubTest, OverlappingSubscriptionsDeliverOneCopyAtTheHighestQoS) {
  auto sub = connected("overlap");
  sub->send(mqtt::Subscribe{1, {{"o/#", 0}, {"o/+", 1}, {"o/x", 0}}});
  EXPECT_EQ(sub->expect<mqtt::Suback>().return_codes, (std::vector<std::uint8_t>{0, 1, 0}));
  auto pub = connected("opub");
  pub->send(publish_packet("o/x", "once", 1, 1));
  pub->expect<mqtt::Puback>();
  auto m = sub->expect<mqtt::Publish>();
  EXPECT_EQ(m.qos, 1);
  sub->send(mqtt::Puback{m.packet_id});
  EXPECT_TRUE(sub->silent_for(300ms));
}

TEST_F(HubTest, RetainedMessagesAfterSubackAndClearedByEmptyPayload) {
  auto pub = connected("rpub");
  pub->send(publish_packet("r/a", "kept", 1, 1, {}, true));
  pub->expect<mqtt::Puback>();
  pub->send(publish_packet("r/b", "cleared", 0, 0, {}, true));
  pub->send(publish_packet("r/b", "", 0, 0, {}, true));
  pub->send(mqtt::Pingreq{});
  pub->expect<mqtt::Pingresp>();

  auto sub = connected("rsub");
  sub->send(mqtt::Subscribe{2, {{"r/#", 1}}});
  sub->expect<mqtt::Suback>();
  auto m = sub->expect<mqtt::Publish>();
  EXPECT_EQ(m.topic, "r/a");
  EXPECT_EQ(m.payload, "kept");
  EXPECT_TRUE(m.retain);
  EXPECT_EQ(m.qos, 1);
  sub->send(mqtt::Puback{m.packet_id});
  EXPECT_TRUE(sub->silent_for(300ms));
  // Live messages to an existing subscription carry retain 0.
  pub->send(publish_packet("r/a", "live", 0, 0, {}, true));
  m = sub->expect<mqtt::Publish>();
  EXPECT_EQ(m.payload, "live");
  EXPECT_FALSE(m.retain);
}

TEST_F(HubTest, WillOnAbruptCloseButNotOnDisconnect) {
  auto watcher = connected("watcher");
  subscribe(*watcher, "will/#", 1, 1);
  {
    RawClient c(port_);
    auto connect = make_connect("dies");
    connect.will = mqtt::Will{"will/dies", "gone", 1, false};
    ASSERT_EQ(c.connect(connect).return_code, mqtt::ConnectReturnCode::Accepted);
  }  // closed without DISCONNECT
  auto m = watcher->expect<mqtt::Publish>();
  EXPECT_EQ(m.topic, "will/dies");
  EXPECT_EQ(m.payload, "gone");
  watcher->send(mqtt::Puback{m.packet_id});
  {
    RawClient c(port_);
    auto connect = make_connect("polite");
    connect.will = mqtt::Will{"will/polite", "gone", 0, false};
    ASSERT_EQ(c.connect(connect).return_code, mqtt::ConnectReturnCode::Accepted);
    c.send(mqtt::Disconnect{});
    EXPECT_TRUE(c.closed_by_peer());
  }
  EXPECT_TRUE(watcher->silent_for(300ms));
  {
    RawClient c(port_);  // a will to a topic the principal may not publish to
    auto connect = make_connect("badwill");
    connect.will = mqtt::Will{"forbidden/x", "gone", 0, false};
    EXPECT_EQ(c.connect(connect).return_code, mqtt::ConnectReturnCode::NotAuthorized);
  }
}

TEST_F(HubTest, KeepaliveEnforcedAndWillSent) {
  auto watcher = connected("kwatch");
  subscribe(*watcher, "will/#", 0, 0);
  RawClient c(port_);
  auto connect = make_connect("silent");
  connect.keep_alive = 1;
  connect.will = mqtt::Will{"will/silent", "timeout", 0, false};
  ASSERT_EQ(c.connect(connect).return_code, mqtt::ConnectReturnCode::Accepted);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_by_peer(5s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 1400ms);
  EXPECT_LT(elapsed, 3s);
  EXPECT_EQ(watcher->expect<mqtt::Publish>().payload, "timeout");
}

TEST_F(HubTest, PersistentSessionQueuesOfflineAndRedeliversUnackedWithDup) {
  {
    RawClient c(port_);
    auto ack = c.connect(make_connect("durable", false));
    EXPECT_FALSE(ack.session_present);
    subscribe(c, "d/#", 1, 1);
    auto pub = connected("dpub");
    pub->send(publish_packet("d/1", "unacked", 1, 1));
    pub->expect<mqtt::Puback>();
    auto m = c.expect<mqtt::Publish>();
    EXPECT_EQ(m.payload, "unacked");
    EXPECT_FALSE(m.dup);
    // disconnect without acknowledging
  }
  auto pub = connected("dpub2");
  pub->send(publish_packet("d/2", "offline", 1, 2));
  pub->expect<mqtt::Puback>();
  pub->send(publish_packet("d/3", "offline qos0 is not kept", 0));
  pub->send(mqtt::Pingreq{});
  pub->expect<mqtt::Pingresp>();  // the hub has handled the QoS 0 message

  RawClient c(port_);
  auto ack = c.connect(make_connect("durable", false));
  EXPECT_TRUE(ack.session_present);
  auto m1 = c.expect<mqtt::Publish>();
  EXPECT_EQ(m1.payload, "unacked");
  EXPECT_TRUE(m1.dup);
  auto m2 = c.expect<mqtt::Publish>();
  EXPECT_EQ(m2.payload, "offline");
  c.send(mqtt::Puback{m1.packet_id});
  c.send(mqtt::Puback{m2.packet_id});
  EXPECT_TRUE(c.silent_for(300ms));
  c.send(mqtt::Disconnect{});

  // A clean session discards it.
  RawClient clean(port_);
  EXPECT_FALSE(clean.connect(make_connect("durable", true)).session_present);
  clean.send(mqtt::Disconnect{});
  RawClient again(port_);
  EXPECT_FALSE(again.connect(make_connect("durable", false)).session_present);
}

TEST_F(HubTest, DuplicateClientIdTakesOverTheSession) {
  auto watcher = connected("twatch");
  subscribe(*watcher, "will/#", 0, 0);
  RawClient first(port_);
  auto connect = make_connect("same");
  connect.will = mqtt::Will{"will/same", "taken over", 0, false};
  ASSERT_EQ(first.connect(connect).return_code, mqtt::ConnectReturnCode::Accepted);
  RawClient second(port_);
  ASSERT_EQ(second.connect(make_connect("same")).return_code, mqtt::ConnectReturnCode::Accepted);
  EXPECT_TRUE(first.closed_by_peer());
  EXPECT_EQ(watcher->expect<mqtt::Publish>().payload, "taken over");
  second.send(mqtt::Pingreq{});
  second.expect<mqtt::Pingresp>();
}

// A client id belongs to the principal whose session it names: another principal can neither
// resume, discard nor take over that session.
TEST_F(HubTest, ASessionNeverReachesAnotherPrincipal) {
  {
    RawClient owner(port_);
    subscribe_persistent(owner, "owned", "private/#", 1);
    owner.send(mqtt::Disconnect{});
  }
  auto pub = connected("ownpub");
  pub->send(publish_packet("private/1", "for the owner", 1, 1));
  pub->expect<mqtt::Puback>();
  for (bool clean : {false, true}) {
    RawClient thief(port_);
    auto ack = thief.connect(make_connect("owned", clean, "limited", "pw"));
    EXPECT_EQ(ack.return_code, mqtt::ConnectReturnCode::IdentifierRejected) << clean;
    EXPECT_FALSE(ack.session_present);
    EXPECT_TRUE(thief.closed_by_peer());
  }
  RawClient owner(port_);
  ASSERT_TRUE(owner.connect(make_connect("owned", false)).session_present);
  auto m = owner.expect<mqtt::Publish>();
  EXPECT_EQ(m.payload, "for the owner");
  owner.send(mqtt::Puback{m.packet_id});
  {
    // Connected, it is not taken over either.
    RawClient thief(port_);
    EXPECT_EQ(thief.connect(make_connect("owned", false, "limited", "pw")).return_code,
              mqtt::ConnectReturnCode::IdentifierRejected);
  }
  pub->send(publish_packet("private/2", "still the owner's", 1, 2));
  pub->expect<mqtt::Puback>();
  m = owner.expect<mqtt::Publish>();
  EXPECT_EQ(m.payload, "still the owner's");
  owner.send(mqtt::Puback{m.packet_id});
  EXPECT_TRUE(logged(*hub_, "belongs to a session of another principal"));
}

TEST_F(DenyTest, WildcardsOverlappingADenyAreGrantedAndDeniedTopicsFiltered) {
  auto sub = connected("dsub");
  sub->send(mqtt::Subscribe{
      1, {{"#", 1}, {"+", 0}, {"+/+", 0}, {"secret/#", 1}, {"secret/+", 0}, {"$secret/#", 1}}});
  EXPECT_EQ(sub->expect<mqtt::Suback>().return_codes,
            (std::vector<std::uint8_t>{1, 0, 0, 0x80, 0x80, 0x80}));
  auto pub = connected("dpub");
  for (const char* topic : {"secret/a", "open/a", "secret", "open", "routed/in", "$secret/a"}) {
    publish1(*pub, topic);
  }
  round_trip(*pub);
  // One copy each (overlapping subscriptions); routes' republished messages filtered as well.
  EXPECT_EQ(received_topics(*sub),
            (std::vector<std::string>{"open", "open/a", "open/routed", "routed/in"}));
}

TEST_F(DenyTest, RetainedMessagesOnWildcardsSkipDeniedTopics) {
  auto pub = connected("rpub");
  for (const char* topic : {"secret/r", "open/r", "$secret/r", "$open/r"}) {
    publish1(*pub, topic, true);
  }
  auto sub = connected("rsub");
  subscribe(*sub, "+/r", 1, 1);
  EXPECT_EQ(received_topics(*sub), std::vector<std::string>{"open/r"});
  subscribe(*sub, "$secret/+", 1, 0x80);
  subscribe(*sub, "$open/+", 1, 1);
  EXPECT_EQ(received_topics(*sub), std::vector<std::string>{"$open/r"});
  auto all = connected("rall");
  subscribe(*all, "#", 1, 1);
  EXPECT_EQ(received_topics(*all), std::vector<std::string>{"open/r"});
}

TEST_F(DenyTest, OfflineQueueOfAPersistentSessionSkipsDeniedTopics) {
  {
    RawClient c(port_);
    subscribe_persistent(c, "dur", "#", 1);
    c.send(mqtt::Disconnect{});
  }
  auto pub = connected("qpub");
  for (const char* topic : {"secret/q", "open/q", "secret"}) publish1(*pub, topic);
  RawClient c(port_);
  ASSERT_TRUE(c.connect(make_connect("dur", false)).session_present);
  EXPECT_EQ(received_topics(c), std::vector<std::string>{"open/q"});
}

TEST_F(DenyTest, UnsubscribingAFilteredWildcardStopsDelivery) {
  auto sub = connected("usub");
  subscribe(*sub, "#", 1, 1);
  auto pub = connected("upub");
  publish1(*pub, "open/u");
  publish1(*pub, "secret/u");
  EXPECT_EQ(received_topics(*sub), std::vector<std::string>{"open/u"});
  sub->send(mqtt::Unsubscribe{2, {"#"}});
  EXPECT_EQ(sub->expect<mqtt::Unsuback>().packet_id, 2);
  publish1(*pub, "open/u");
  round_trip(*pub);
  EXPECT_TRUE(sub->silent_for(300ms));
}

// MQTT 3.1.1 4.7.2: '$' topics are published like any other and matched only by filters that
// name their first level; $SYS is the hub's.
TEST_F(DenyTest, DollarTopicsAreAcceptedAndMatchedOnlyByFiltersNamingThem) {
  auto all = connected("all");
  subscribe(*all, "#", 1, 1);
  auto plus = connected("plus");
  subscribe(*plus, "+/iot/#", 1, 1);
  auto baidu = connected("baidu");
  subscribe(*baidu, "$baidu/#", 1, 1);
  auto sys = connected("sys");
  subscribe(*sys, "$SYS/#", 1, 1);
  auto pub = connected("dollarpub");
  publish1(*pub, "$baidu/iot/edge/x");
  pub->send(publish_packet("$baidu/iot/two", "m", 2, 50));
  EXPECT_EQ(pub->expect<mqtt::Pubrec>().packet_id, 50);
  pub->send(mqtt::Pubrel{50});
  EXPECT_EQ(pub->expect<mqtt::Pubcomp>().packet_id, 50);
  publish1(*pub, "$SYS/broker/load");  // acknowledged and dropped; the connection stays
  publish1(*pub, "$secret/x");         // published, but nobody may receive it
  round_trip(*pub);
  // A principal without permission on a '$' topic is refused as on any other.
  RawClient limited(port_);
  ASSERT_EQ(limited.connect(make_connect("dollarlim", true, "limited", "pw")).return_code,
            mqtt::ConnectReturnCode::Accepted);
  limited.send(publish_packet("$baidu/iot/limited", "m", 1, 7));
  EXPECT_EQ(limited.expect<mqtt::Puback>().packet_id, 7);
  round_trip(limited);

  EXPECT_EQ(received_topics(*baidu),
            (std::vector<std::string>{"$baidu/iot/edge/x", "$baidu/iot/two"}));
  EXPECT_TRUE(all->silent_for(100ms));
  EXPECT_TRUE(plus->silent_for(100ms));
  // The hub's own $SYS topics (retained) reach a subscriber permitted them; the client's never.
  const auto sys_topics = received_topics(*sys);
  EXPECT_EQ(std::count(sys_topics.begin(), sys_topics.end(), "$SYS/broker/load"), 0);
  EXPECT_EQ(std::count(sys_topics.begin(), sys_topics.end(), "$SYS/broker/uptime"), 1);
  EXPECT_TRUE(logged(*hub_, "PUBLISH to '$SYS/broker/load' dropped"));
}

class SmallLimitsTest : public HubTest {
 protected:
  std::string extra_config() const override { return "message: {length: {max: 100}}\n"; }
};

TEST_F(SmallLimitsTest, MalformedPacketsCloseOnlyThatConnection) {
  auto bystander = connected("bystander");
  subscribe(*bystander, "ok", 0, 0);
  auto expect_closed = [&](const std::string& what, const std::string& bytes, bool connect_first) {
    RawClient c(port_);
    if (connect_first) {
      ASSERT_EQ(c.connect(make_connect("")).return_code, mqtt::ConnectReturnCode::Accepted);
    }
    c.send_raw(bytes);
    EXPECT_TRUE(c.closed_by_peer()) << what;
  };
  // Truncated CONNECT (remaining length promises more than arrives, then garbage type).
  expect_closed("truncated", std::string("\x10\x05\x00\x04MQ", 7) + std::string("\xF0\x00", 2),
                false);
  // Payload over message.length.max.
  auto big = mqtt::encode(publish_packet("ok", std::string(200, 'x'), 0));
  expect_closed("oversized", big, true);
  // Topic not valid UTF-8.
  expect_closed("bad utf-8", std::string("\x30\x05\x00\x02\xC3\x28x", 7), true);
  // Reserved flags of SUBSCRIBE must be 0010.
  expect_closed("invalid flags", std::string("\x80\x06\x00\x01\x00\x01\x61\x00", 8), true);
  // Wildcard in a PUBLISH topic.
  expect_closed("wildcard topic", std::string("\x30\x05\x00\x03\x61\x2F\x23", 7), true);
  // Topic with more than 8 '/'.
  expect_closed("deep topic", mqtt::encode(publish_packet("a/b/c/d/e/f/g/h/i/j", "y", 0)), true);

  auto pub = connected("stillok");
  pub->send(publish_packet("ok", std::string(100, 'y'), 0));  // exactly the limit
  EXPECT_EQ(bystander->expect<mqtt::Publish>().payload.size(), 100u);
}

class LargeMessagesTest : public HubTest {
 protected:
  std::string extra_config() const override { return "message: {length: {max: 1m}}\n"; }
};

// A connection reads into its worker's 64 KB buffer and keeps only an incomplete packet: packets
// larger than that buffer, and packets split anywhere across reads, arrive whole and in order.
TEST_F(LargeMessagesTest, PacketsLargerThanTheReadBufferAndSplitAnywhere) {
  auto sub = connected("bigsub");
  subscribe(*sub, "large/#", 1, 1);
  auto pub = connected("bigpub");
  std::vector<std::string> payloads;
  std::string bytes;
  for (std::size_t size : {std::size_t{300 * 1024}, std::size_t{10}, std::size_t{65 * 1024},
                           std::size_t{1000 * 1024}, std::size_t{64 * 1024 - 20}}) {
    std::string payload(size, 'a');
    for (std::size_t i = 0; i < size; i += 997) payload[i] = static_cast<char>('a' + i % 26);
    payloads.push_back(payload);
    mqtt::encode(publish_packet("large/x", payload, static_cast<std::uint8_t>(payloads.size() % 2),
                                static_cast<std::uint16_t>(payloads.size())),
                 bytes);
  }
  // In pieces of odd sizes, with pauses, so that packets are cut at every kind of place.
  std::thread sender([&] {
    std::size_t at = 0;
    for (std::size_t piece = 1; at < bytes.size(); piece = piece * 7 % 100003 + 1) {
      const std::size_t n = std::min(piece, bytes.size() - at);
      pub->send_raw(bytes.substr(at, n));
      at += n;
      if (piece % 3 == 0) std::this_thread::sleep_for(1ms);
    }
  });
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    auto m = sub->expect<mqtt::Publish>(10s);
    EXPECT_EQ(m.payload.size(), payloads[i].size()) << i;
    EXPECT_TRUE(m.payload == payloads[i]) << i;
    if (m.qos == 1) sub->send(mqtt::Puback{m.packet_id});
  }
  sender.join();
  pub->send(mqtt::Pingreq{});
  while (true) {  // PUBACKs of the QoS 1 ones, then PINGRESP
    auto p = pub->receive(5s);
    ASSERT_TRUE(p.has_value());
    if (std::holds_alternative<mqtt::Pingresp>(*p)) break;
  }
}

TEST(HubIpv6, ListensOnIpv6Loopback) {
  const auto port = free_port();
  const auto port6 = free_port();
  // IPv4 and IPv6 loopback listeners side by side (tests bind loopback addresses only).
  std::string config = base_config(port);
  config.replace(config.find("principals:"), 0, "  - tcp://[::1]:" + std::to_string(port6) + "\n");
  HubProcess hub(config, port);
  RawClient v4(port, "127.0.0.1");
  EXPECT_EQ(v4.connect(make_connect("four")).return_code, mqtt::ConnectReturnCode::Accepted);
  RawClient only6(port6, "::1");
  EXPECT_EQ(only6.connect(make_connect("only6")).return_code, mqtt::ConnectReturnCode::Accepted);
}

TEST(HubRestart, PersistentSessionSurvivesARestart) {
  const auto port = free_port();
  HubProcess hub(base_config(port), port);
  {
    RawClient c(port);
    subscribe_persistent(c, "keeper", "keep/#", 1);
    c.send(mqtt::Disconnect{});
    RawClient pub(port);
    pub.connect(make_connect("kpub"));
    for (std::uint16_t i = 1; i <= 3; ++i) {
      mqtt::Publish p{"keep/" + std::to_string(i), "m" + std::to_string(i), 1, false, false, i};
      pub.send(p);
      pub.expect<mqtt::Puback>();
    }
    // QoS 1, acknowledged: a QoS 0 message may still be unread when the hub stops.
    mqtt::Publish retained{"kept/retained", "r", 1, true, false, 9};
    pub.send(retained);
    pub.expect<mqtt::Puback>();
    pub.send(mqtt::Disconnect{});
  }
  restart(hub);
  RawClient c(port);
  EXPECT_TRUE(c.connect(make_connect("keeper", false)).session_present);
  for (int i = 1; i <= 3; ++i) {
    auto m = c.expect<mqtt::Publish>();
    EXPECT_EQ(m.payload, "m" + std::to_string(i));
    c.send(mqtt::Puback{m.packet_id});
  }
  // The subscription is back too: a new message arrives, and the retained one on subscribing.
  RawClient pub(port);
  pub.connect(make_connect("kpub"));
  pub.send(mqtt::Publish{"keep/new", "fresh", 0, false, false, 0});
  EXPECT_EQ(c.expect<mqtt::Publish>().payload, "fresh");
  c.send(mqtt::Subscribe{2, {{"kept/retained", 0}}});
  c.expect<mqtt::Suback>();
  auto r = c.expect<mqtt::Publish>();
  EXPECT_EQ(r.payload, "r");
  EXPECT_TRUE(r.retain);
  EXPECT_EQ(r.qos, 0);
}

// After a restart, the session still belongs to its principal, and its subscriptions and queue
// follow the configuration the hub starts with.
TEST(HubRestart, ASessionNeverReachesAnotherPrincipalAcrossARestart) {
  const auto port = free_port();
  HubProcess hub(deny_config(port), port);
  {
    RawClient owner(port);
    ASSERT_FALSE(owner.connect(make_connect("owned", false)).session_present);
    owner.send(mqtt::Subscribe{1, {{"private/#", 1}, {"open/#", 1}, {"#", 1}}});
    EXPECT_EQ(owner.expect<mqtt::Suback>().return_codes, (std::vector<std::uint8_t>{1, 1, 1}));
    owner.send(mqtt::Disconnect{});
    RawClient pub(port);
    pub.connect(make_connect("ownpub"));
    std::uint16_t id = 0;
    for (const char* topic : {"private/1", "open/1", "secret/1", "other/1"}) {
      pub.send(mqtt::Publish{topic, "m", 1, false, false, ++id});
      pub.expect<mqtt::Puback>();
    }
  }
  EXPECT_EQ(hub.stop(SIGTERM), 0);
  // Meanwhile open/# is denied as well.
  hub.dir().write("etc/baetyl/service.yml", deny_config(port, ", 'open/#'"));
  hub.start();
  for (bool clean : {false, true}) {
    RawClient thief(port);
    EXPECT_EQ(thief.connect(make_connect("owned", clean, "limited", "pw")).return_code,
              mqtt::ConnectReturnCode::IdentifierRejected);
  }
  RawClient owner(port);
  ASSERT_TRUE(owner.connect(make_connect("owned", false)).session_present);
  EXPECT_EQ(received_topics(owner), (std::vector<std::string>{"other/1", "private/1"}));
  RawClient pub(port);
  pub.connect(make_connect("ownpub"));
  std::uint16_t id = 10;
  for (const char* topic : {"open/2", "private/2", "secret/2"}) {
    pub.send(mqtt::Publish{topic, "m", 1, false, false, ++id});
    pub.expect<mqtt::Puback>();
  }
  EXPECT_EQ(received_topics(owner), std::vector<std::string>{"private/2"});
}

TEST(HubRestart, SigkillLosesNoAcknowledgedQoS1Message) {
  const auto port = free_port();
  HubProcess hub(base_config(port), port);
  {
    RawClient sub(port);
    subscribe_persistent(sub, "victim", "stream", 1);
    sub.send(mqtt::Disconnect{});
  }
  RawClient pub(port);
  pub.connect(make_connect("streamer"));
  constexpr int kTotal = 2000;
  std::string burst;
  for (int i = 1; i <= kTotal; ++i) {
    mqtt::Publish p{"stream", std::to_string(i), 1, false, false, static_cast<std::uint16_t>(i)};
    mqtt::encode(p, burst);
  }
  std::thread sender([&] { pub.send_raw(burst); });
  std::set<std::string> acked;
  while (acked.size() < 300) {
    auto p = pub.receive(5s);
    ASSERT_TRUE(p.has_value());
    acked.insert(std::to_string(std::get<mqtt::Puback>(*p).packet_id));
  }
  hub.stop(SIGKILL);
  while (auto p = pub.receive(1s))
    acked.insert(std::to_string(std::get<mqtt::Puback>(*p).packet_id));
  pub.close();
  sender.join();

  hub.start();
  RawClient sub(port);
  EXPECT_TRUE(sub.connect(make_connect("victim", false)).session_present);
  std::set<std::string> received;
  while (auto p = sub.receive(1s)) {
    auto& m = std::get<mqtt::Publish>(*p);
    received.insert(m.payload);
    sub.send(mqtt::Puback{m.packet_id});
  }
  expect_none_lost(acked, received);
  EXPECT_GE(received.size(), acked.size());
}

namespace {

Run run_paho(const baetyl::testing::TempDir& dir, std::vector<std::string> args) {
  std::vector<std::string> argv{"/usr/bin/python3", python_client_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_to_end(dir, argv, 15s);
}

class TransportTest : public ::testing::Test {
 protected:
  virtual std::string certificate_options() const { return ""; }

  void SetUp() override {
    pki_ = baetyl::testing::make_test_pki(dir_.path() / "pki");
    tcp_ = free_port();
    ssl_ = free_port();
    ws_ = free_port();
    wss_ = free_port();
    std::string config = base_config(tcp_);
    config.replace(config.find("principals:"), 0,
                   "  - ssl://127.0.0.1:" + std::to_string(ssl_) + "\n" +
                       "  - ws://127.0.0.1:" + std::to_string(ws_) + "/mqtt\n" +
                       "  - wss://127.0.0.1:" + std::to_string(wss_) + "/mqtt\n" +
                       "certificate:\n  ca: " + pki_.ca.string() +
                       "\n  cert: " + pki_.server_cert.string() +
                       "\n  key: " + pki_.server_key.string() + "\n" + certificate_options());
    // The client certificate's CN is "client": a principal without password; "device" is
    // another one.
    config.replace(config.find("subscriptions:"), 0,
                   "  - username: client\n"
                   "    permissions:\n"
                   "      - {action: pub, permit: ['tls/#']}\n"
                   "      - {action: sub, permit: ['tls/#']}\n"
                   "  - username: device\n"
                   "    permissions:\n"
                   "      - {action: pub, permit: ['device/#']}\n"
                   "      - {action: sub, permit: ['device/#']}\n");
    hub_ = std::make_unique<HubProcess>(config, tcp_);
    ASSERT_TRUE(baetyl::testing::wait_for_port(wss_));
  }

  // `args` with the test CA and the client's certificate and key.
  std::vector<std::string> with_client_certificate(std::vector<std::string> args) const {
    args.insert(args.end(), {"--ca", pki_.ca.string(), "--cert", pki_.client_cert.string(), "--key",
                             pki_.client_key.string()});
    return args;
  }

  baetyl::testing::TempDir dir_;
  baetyl::testing::TestPki pki_;
  std::uint16_t tcp_ = 0, ssl_ = 0, ws_ = 0, wss_ = 0;
  std::unique_ptr<HubProcess> hub_;
};

}  // namespace

TEST_F(TransportTest, EveryTransportWithPaho) {
  const std::vector<std::string> login{"--username", "test", "--password", "hahaha"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), login.begin(), login.end());
    return args;
  };
  auto r = run_paho(dir_, with({"--scheme", "tcp", "--port", std::to_string(tcp_)}));
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("received hello over tcp"), std::string::npos) << r.output;
  // One-way TLS: the client verifies the hub, the hub checks the password.
  r = run_paho(dir_,
               with({"--scheme", "ssl", "--port", std::to_string(ssl_), "--ca", pki_.ca.string()}));
  EXPECT_EQ(r.code, 0) << r.output;
  r = run_paho(dir_, with({"--scheme", "ws", "--port", std::to_string(ws_)}));
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("received hello over ws"), std::string::npos) << r.output;
  r = run_paho(dir_,
               with({"--scheme", "wss", "--port", std::to_string(wss_), "--ca", pki_.ca.string()}));
  EXPECT_EQ(r.code, 0) << r.output;
  // A WebSocket on another path is refused.
  r = run_paho(dir_, with({"--scheme", "ws", "--port", std::to_string(ws_), "--path", "/other",
                           "--timeout", "2"}));
  EXPECT_NE(r.code, 0) << r.output;
}

TEST_F(TransportTest, TwoWayTlsMapsTheCertificateToAPrincipal) {
  auto with = [&](std::vector<std::string> args) { return with_client_certificate(args); };
  // Username given, empty password: the principal without password of that name.
  auto r = run_paho(dir_, with({"--scheme", "ssl", "--port", std::to_string(ssl_), "--username",
                                "client", "--topic", "tls/a"}));
  EXPECT_EQ(r.code, 0) << r.output;
  // No username: the certificate's CN.
  r = run_paho(dir_, with({"--scheme", "wss", "--port", std::to_string(wss_), "--topic", "tls/b"}));
  EXPECT_EQ(r.code, 0) << r.output;
  // Its permissions apply.
  r = run_paho(dir_, with({"--scheme", "ssl", "--port", std::to_string(ssl_), "--topic", "other"}));
  EXPECT_EQ(r.code, 3) << r.output;
  // A principal with a password still needs it.
  r = run_paho(dir_,
               with({"--scheme", "ssl", "--port", std::to_string(ssl_), "--username", "test"}));
  EXPECT_EQ(r.code, 14) << r.output;
  // Another principal without password: the username must be the certificate's CN.
  r = run_paho(dir_, with({"--scheme", "ssl", "--port", std::to_string(ssl_), "--username",
                           "device", "--topic", "device/a"}));
  EXPECT_EQ(r.code, 14) << r.output;
  r = run_paho(dir_, with({"--scheme", "wss", "--port", std::to_string(wss_), "--username",
                           "device", "--topic", "device/a"}));
  EXPECT_EQ(r.code, 14) << r.output;
  // Without a certificate, an empty password is refused.
  r = run_paho(dir_, {"--scheme", "ssl", "--port", std::to_string(ssl_), "--ca", pki_.ca.string(),
                      "--username", "client"});
  EXPECT_EQ(r.code, 14) << r.output;
  // A client that does not trust the hub's CA fails the handshake.
  r = run_paho(dir_, {"--scheme", "ssl", "--port", std::to_string(ssl_), "--ca",
                      pki_.other_ca.string(), "--username", "test", "--password", "hahaha"});
  EXPECT_EQ(r.code, 2) << r.output;
}

namespace {
class UsernameAsIdentityTest : public TransportTest {
 protected:
  std::string certificate_options() const override { return "  useUsernameAsIdentity: true\n"; }
};
}  // namespace

// With certificate.useUsernameAsIdentity, the username of a client with a verified certificate
// names the principal (without password), whatever the certificate's CN.
TEST_F(UsernameAsIdentityTest, TheUsernameNamesThePrincipal) {
  auto with = [&](std::vector<std::string> args) { return with_client_certificate(args); };
  auto r = run_paho(dir_, with({"--scheme", "ssl", "--port", std::to_string(ssl_), "--username",
                                "device", "--topic", "device/a"}));
  EXPECT_EQ(r.code, 0) << r.output;
  // Its permissions are the principal's, not the CN's.
  r = run_paho(dir_, with({"--scheme", "ssl", "--port", std::to_string(ssl_), "--username",
                           "device", "--topic", "tls/a"}));
  EXPECT_EQ(r.code, 3) << r.output;
  // A principal with a password still needs it.
  r = run_paho(dir_,
               with({"--scheme", "ssl", "--port", std::to_string(ssl_), "--username", "test"}));
  EXPECT_EQ(r.code, 14) << r.output;
}

TEST(HubMaster, ReportsStatsToTheMaster) {
  baetyl::testing::HttpTestServer master;
  const auto port = free_port();
  baetyl::testing::TempDir dir;
  dir.write("etc/baetyl/service.yml", base_config(port));
  baetyl::testing::ProcessOptions options;
  options.working_dir = dir.path().string();
  options.output_file = (dir.path() / "output.log").string();
  options.env = {{"BAETYL_SERVICE_NAME", "localhub"},
                 {"BAETYL_SERVICE_INSTANCE_NAME", "localhub"},
                 {"BAETYL_SERVICE_TOKEN", "secret-token"},
                 {"BAETYL_MASTER_API_ADDRESS", master.tcp_address()}};
  baetyl::testing::Process hub({baetyl::testing::binary_path("baetyl-hub")}, options);
  ASSERT_TRUE(baetyl::testing::wait_for_port(port));
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (master.request_count() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  auto requests = master.requests();
  ASSERT_FALSE(requests.empty()) << hub.output();
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_NE(requests[0].target.find("localhub"), std::string::npos) << requests[0].target;
  EXPECT_NE(requests[0].target.find("/report"), std::string::npos) << requests[0].target;
  auto body = nlohmann::json::parse(requests[0].body);
  EXPECT_TRUE(body.contains("connections")) << requests[0].body;
  EXPECT_TRUE(body["messages"].contains("in")) << requests[0].body;
  EXPECT_TRUE(body["messages"].contains("out")) << requests[0].body;
  ASSERT_EQ(body["rules"].size(), 1u) << requests[0].body;
  EXPECT_EQ(body["rules"][0]["source"], "t");
  EXPECT_EQ(hub.stop(SIGTERM), 0);
}

class StatusTest : public HubTest {
 protected:
  std::string extra_config() const override {
    return "status: {logging: {enable: true, interval: 100ms}}\n"
           "message: {ingress: {qos1: {cleanup: {retention: 300ms, interval: 50ms}}}}\n";
  }
};

TEST_F(StatusTest, StatusLoggingAndRetentionCleanup) {
  {
    RawClient c(port_);
    c.connect(make_connect("late", false));
    c.send(mqtt::Subscribe{1, {{"old", 1}}});
    c.expect<mqtt::Suback>();
    c.send(mqtt::Disconnect{});
  }
  auto pub = connected("opub");
  pub->send(publish_packet("old", "expires", 1, 1));
  pub->expect<mqtt::Puback>();
  // The message outlives the retention while its subscriber is away.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (hub_->output().find("status:") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(hub_->output().find("status: {"), std::string::npos);
  std::this_thread::sleep_for(500ms);  // retention 300ms plus a cleanup round of 50ms
  RawClient c(port_);
  EXPECT_TRUE(c.connect(make_connect("late", false)).session_present);
  EXPECT_TRUE(c.silent_for(300ms));
}

class DeadSubscriberTest : public HubTest {
 protected:
  std::string extra_config() const override {
    return "status: {logging: {enable: true, interval: 100ms}}\n";
  }
  // PUBLISH packets to `topic` at `qos` whose payloads are the numbers `first` to `last`, padded
  // to 1 KB with spaces; a QoS 1 packet's id is its number.
  std::string padded_burst(const std::string& topic, std::uint8_t qos, int first, int last) {
    std::string burst;
    for (int i = first; i <= last; ++i) {
      std::string payload = std::to_string(i);
      payload.resize(1024, ' ');
      mqtt::encode(publish_packet(topic, payload, qos, static_cast<std::uint16_t>(i)), burst);
    }
    return burst;
  }
  // Reads the messages numbered `first` to `last` on `c` on a thread of its own, acknowledging
  // QoS 1 ones; `error` names the first that is late or out of order.
  static std::thread read_in_order(RawClient& c, int first, int last, std::string& error) {
    return std::thread([&c, first, last, &error] {
      for (int expected = first; expected <= last; ++expected) {
        auto p = c.receive(10s);
        if (!p) {
          error = "timed out after " + std::to_string(expected - first) + " messages";
          return;
        }
        const auto& m = std::get<mqtt::Publish>(*p);
        if (m.qos == 1) c.send(mqtt::Puback{m.packet_id});
        if (const int seq = std::stoi(m.payload); seq != expected) {
          error = "message " + std::to_string(seq) + " instead of " + std::to_string(expected);
          return;
        }
      }
    });
  }
  // The stat `key` of the status lines once it is above 0 (within 5 s), else its last value.
  long wait_for_stat(const std::string& key) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (hub_->last_stat(key) <= 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(50ms);
    }
    return hub_->last_stat(key);
  }
};

// A subscriber that never reads holds a publisher up once, for a moment, not at every read: the
// publisher and a subscriber that reads go on at full speed, and the silent subscriber's QoS 0
// messages beyond its queue are dropped at once, counted and logged.
TEST_F(DeadSubscriberTest, ASubscriberThatNeverReadsSlowsNobody) {
  auto dead = connected("dead");
  subscribe(*dead, "flood/#", 0, 0);
  auto live = connected("live");
  subscribe(*live, "flood/#", 0, 0);
  // 40 MB: beyond what the socket buffers and the silent subscriber's queue take.
  constexpr int kMessages = 40000;
  const std::string burst = padded_burst("flood/1", 0, 0, kMessages - 1);
  std::string error;
  std::thread reader = read_in_order(*live, 0, kMessages - 1, error);
  auto pub = connected("flooder");
  const auto start = std::chrono::steady_clock::now();
  pub->send_raw(burst);
  pub->send(mqtt::Pingreq{});
  pub->expect<mqtt::Pingresp>(60s);  // the hub has read everything
  const auto elapsed = std::chrono::steady_clock::now() - start;
  reader.join();
  EXPECT_EQ(error, "");
  // Waiting 100 ms at every read of the publisher took about 40 s here.
  EXPECT_LT(elapsed, 10s) << "the publisher was held up";
  EXPECT_GT(wait_for_stat("dropped"), 0L);
  EXPECT_NE(hub_->output().find("client 'dead' did not drain its queue"), std::string::npos);
  EXPECT_NE(hub_->output().find("QoS 0 queue of 'dead' is full"), std::string::npos);
}

// A clean QoS 1 subscriber that stops reading has a bounded queue: beyond it, new messages are
// dropped for it only (counted and logged); the publisher gets every PUBACK and another subscriber
// every message.
TEST_F(DeadSubscriberTest, ACleanQos1QueueIsBoundedAndDropsForThatSubscriberOnly) {
  auto dead = connected("dead1");
  subscribe(*dead, "q1/#", 1, 1);
  auto live = connected("live1");
  subscribe(*live, "q1/#", 1, 1);
  constexpr int kMessages = 3000;
  const std::string burst = padded_burst("q1/x", 1, 1, kMessages);
  std::string error;
  std::thread reader = read_in_order(*live, 1, kMessages, error);
  auto pub = connected("q1pub");
  std::thread sender([&] { pub->send_raw(burst); });
  for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(pub->receive(10s).has_value()) << i;
  sender.join();
  reader.join();
  EXPECT_EQ(error, "");
  EXPECT_GT(wait_for_stat("dropped_qos1"), 0L);
  EXPECT_NE(hub_->output().find("QoS 1/2 queue of 'dead1' (clean session) is full"),
            std::string::npos);
}

class SmallQueueTest : public DeadSubscriberTest {
 protected:
  std::string extra_config() const override {
    return DeadSubscriberTest::extra_config() + "message: {egress: {qos1: {queue: {size: 100}}}}\n";
  }
};

// A persistent subscriber keeps at most its queue bound in memory; the rest stays in the store
// and comes back in order as it reads, whether it stopped reading or was away.
TEST_F(SmallQueueTest, APersistentQueueBeyondItsBoundIsReadBackFromTheStore) {
  auto sub = std::make_unique<RawClient>(port_);
  ASSERT_EQ(sub->connect(make_connect("pager", false)).return_code,
            mqtt::ConnectReturnCode::Accepted);
  subscribe(*sub, "pg/#", 1, 1);
  auto pub = connected("pgpub");
  int published = 0;
  auto publish = [&](int count) {
    std::string burst;
    for (int i = 0; i < count; ++i) {
      ++published;
      mqtt::encode(publish_packet("pg/x", std::to_string(published), 1,
                                  static_cast<std::uint16_t>(published)),
                   burst);
    }
    pub->send_raw(burst);
    for (int i = 0; i < count; ++i) pub->expect<mqtt::Puback>();
  };
  int next = 1;
  auto read_all = [&](RawClient& c) {
    while (next <= published) {
      auto p = c.receive(5s);
      ASSERT_TRUE(p.has_value()) << "nothing after " << next - 1;
      const auto& m = std::get<mqtt::Publish>(*p);
      ASSERT_EQ(m.payload, std::to_string(next)) << "out of order";
      EXPECT_FALSE(m.dup) << m.payload;
      c.send(mqtt::Puback{m.packet_id});
      ++next;
    }
    EXPECT_TRUE(c.silent_for(300ms));  // and nothing twice
  };
  publish(1000);  // not read meanwhile: 100 in flight, 100 queued in memory, the rest in the store
  read_all(*sub);
  sub->send(mqtt::Disconnect{});
  EXPECT_TRUE(sub->closed_by_peer());  // gone before the next messages come
  sub.reset();
  publish(500);  // while it is away: all in the store
  RawClient again(port_);
  ASSERT_TRUE(again.connect(make_connect("pager", false)).session_present);
  read_all(again);
  EXPECT_GE(wait_for_stat("paged"), 1200L);
  EXPECT_EQ(hub_->last_stat("dropped_qos1"), 0L);
}

// Once a big queue is freed, the hub gives the memory back to the system.
class BigQueueTest : public HubTest {
 protected:
  std::string extra_config() const override {
    return "message: {egress: {qos0: {buffer: {size: 100000, bytes: 256m}}, "
           "qos1: {queue: {size: 100000, bytes: 256m}}}}\n";
  }
  // Closes `hoarder`, whose queue took the hub from `idle` to `full` KB, and expects the hub's RSS
  // to come back within 40 MB of `idle` in 5 s.
  void expect_memory_back_after_closing(RawClient& hoarder, long idle, long full) {
    hoarder.close();  // its session ends, and its queue with it
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (hub_->rss_kb() > idle + 40 * 1024 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
    }
    EXPECT_LT(hub_->rss_kb(), idle + 40 * 1024)
        << "idle " << idle << " KB, with the queue " << full << " KB";
  }
};

TEST_F(BigQueueTest, MemoryOfAFreedQos0QueueGoesBackToTheSystem) {
  const long idle = hub_->rss_kb();
  auto dead = connected("hoarder0");
  subscribe(*dead, "big0/#", 0, 0);
  auto pub = connected("bigpub0");
  // 100 MB of QoS 0 for a subscriber that never reads.
  const std::string payload(32 * 1024, 'x');
  for (int sent = 0; sent < 3200;) {
    std::string burst;
    for (int i = 0; i < 100; ++i, ++sent) mqtt::encode(publish_packet("big0/x", payload, 0), burst);
    pub->send_raw(burst);
  }
  pub->send(mqtt::Pingreq{});
  pub->expect<mqtt::Pingresp>();
  const long full = hub_->rss_kb();
  ASSERT_GT(full - idle, 60 * 1024) << "the queue did not take the memory expected";
  expect_memory_back_after_closing(*dead, idle, full);
}

TEST_F(BigQueueTest, MemoryOfAFreedQueueGoesBackToTheSystem) {
  const long idle = hub_->rss_kb();
  auto dead = connected("hoarder");
  subscribe(*dead, "big/#", 1, 1);
  auto pub = connected("bigpub");
  // 100 MB in 32 KB messages for a subscriber that never reads.
  constexpr int kMessages = 3200;
  const std::string payload(32 * 1024, 'x');
  for (int sent = 0; sent < kMessages;) {
    std::string burst;
    for (int i = 0; i < 100; ++i, ++sent) {
      mqtt::encode(publish_packet("big/x", payload, 1, static_cast<std::uint16_t>(sent + 1)),
                   burst);
    }
    pub->send_raw(burst);
    for (int i = 0; i < 100; ++i) pub->expect<mqtt::Puback>();
  }
  const long full = hub_->rss_kb();
  ASSERT_GT(full - idle, 80 * 1024) << "the queue did not take the memory expected";
  expect_memory_back_after_closing(*dead, idle, full);
}

// Redelivered after a restart, a message carries DUP only if it had been sent before.
TEST(HubRestart, OnlyMessagesSentBeforeARestartCarryDup) {
  const auto port = free_port();
  HubProcess hub(base_config(port, "message: {egress: {qos1: {buffer: {size: 2}}}}\n"), port);
  {
    RawClient sub(port);
    subscribe_persistent(sub, "dupsub", "dup", 1);
    RawClient pub(port);
    pub.connect(make_connect("duppub"));
    for (std::uint16_t i = 1; i <= 4; ++i) {
      pub.send(mqtt::Publish{"dup", "m" + std::to_string(i), 1, false, false, i});
      pub.expect<mqtt::Puback>();
    }
    // Two in flight (sent, never acknowledged); two still queued when it goes.
    EXPECT_EQ(sub.expect<mqtt::Publish>().payload, "m1");
    EXPECT_EQ(sub.expect<mqtt::Publish>().payload, "m2");
  }
  restart(hub);
  RawClient sub(port);
  ASSERT_TRUE(sub.connect(make_connect("dupsub", false)).session_present);
  std::vector<std::pair<std::string, bool>> got;
  while (got.size() < 4) {
    auto p = sub.receive(5s);
    ASSERT_TRUE(p.has_value()) << got.size();
    const auto& m = std::get<mqtt::Publish>(*p);
    got.emplace_back(m.payload, m.dup);
    sub.send(mqtt::Puback{m.packet_id});
  }
  EXPECT_EQ(got, (std::vector<std::pair<std::string, bool>>{
                     {"m1", true}, {"m2", true}, {"m3", false}, {"m4", false}}));
}

TEST_F(HubTest, RoutedMessagesUseTheLowestQoS) {
  auto sub = connected("rq");
  subscribe(*sub, "t/topic", 1, 1);
  auto pub = connected("rqp");
  pub->send(publish_packet("t", "routed", 1, 3));
  pub->expect<mqtt::Puback>();
  auto m = sub->expect<mqtt::Publish>();
  EXPECT_EQ(m.topic, "t/topic");
  EXPECT_EQ(m.payload, "routed");
  EXPECT_EQ(m.qos, 0);  // the route's QoS defaults to 0
}

TEST_F(HubTest, GracefulShutdownOnSigterm) {
  auto a = connected("a");
  auto b = connected("b", false);
  subscribe(*b, "x", 1, 1);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(hub_->stop(SIGTERM), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_TRUE(a->closed_by_peer(1s));
  EXPECT_TRUE(b->closed_by_peer(1s));
  EXPECT_NE(hub_->output().find("hub stopped"), std::string::npos);
}

class EgressTest : public HubTest {
 protected:
  std::string extra_config() const override {
    return "message: {egress: {qos1: {buffer: {size: 2}, retry: {interval: 300ms}}}}\n";
  }
};

TEST_F(EgressTest, InflightWindowAndRetryWithDup) {
  auto sub = connected("slow");
  subscribe(*sub, "w", 1, 1);
  auto pub = connected("fast");
  for (std::uint16_t i = 1; i <= 4; ++i) {
    pub->send(publish_packet("w", "m" + std::to_string(i), 1, i));
    pub->expect<mqtt::Puback>();
  }
  // Only two in flight until one is acknowledged.
  auto m1 = sub->expect<mqtt::Publish>();
  auto m2 = sub->expect<mqtt::Publish>();
  EXPECT_EQ(m1.payload, "m1");
  EXPECT_EQ(m2.payload, "m2");
  EXPECT_FALSE(m1.dup);
  // Unacknowledged for the retry interval: both again, with DUP and the same packet ids.
  auto r1 = sub->expect<mqtt::Publish>(2s);
  auto r2 = sub->expect<mqtt::Publish>(2s);
  EXPECT_EQ(r1.payload, "m1");
  EXPECT_TRUE(r1.dup);
  EXPECT_EQ(r1.packet_id, m1.packet_id);
  EXPECT_EQ(r2.payload, "m2");
  // Later retries of what is still unacknowledged may come in between on a slow machine.
  auto next_new = [&] {
    while (true) {
      auto m = sub->expect<mqtt::Publish>();
      if (!m.dup || m.payload.empty()) return m;
    }
  };
  sub->send(mqtt::Puback{m1.packet_id});
  auto m3 = next_new();
  EXPECT_EQ(m3.payload, "m3");
  EXPECT_FALSE(m3.dup);
  sub->send(mqtt::Puback{m2.packet_id});
  sub->send(mqtt::Puback{m3.packet_id});
  auto m4 = next_new();
  EXPECT_EQ(m4.payload, "m4");
  sub->send(mqtt::Puback{m4.packet_id});
}

TEST_F(HubTest, ConcurrentPublishersAndSubscribersReceiveEverythingInOrder) {
  constexpr int kPublishers = 4;
  constexpr int kSubscribers = 4;
  constexpr int kMessages = 500;
  std::vector<std::unique_ptr<RawClient>> subs;
  for (int s = 0; s < kSubscribers; ++s) {
    subs.push_back(connected("csub" + std::to_string(s)));
    subscribe(*subs.back(), "c/#", static_cast<std::uint8_t>(s % 2), s % 2);
  }
  std::vector<std::thread> threads;
  std::vector<std::string> errors(kSubscribers);
  for (int s = 0; s < kSubscribers; ++s) {
    threads.emplace_back([&, s] {
      std::vector<int> last(kPublishers, 0);
      int count = 0;
      while (count < kPublishers * kMessages) {
        auto p = subs[s]->receive(5s);
        if (!p) {
          errors[s] = "timed out after " + std::to_string(count) + " messages";
          return;
        }
        auto& m = std::get<mqtt::Publish>(*p);
        if (m.qos == 1) subs[s]->send(mqtt::Puback{m.packet_id});
        const int publisher = m.topic.back() - '0';
        const int seq = std::stoi(m.payload);
        if (seq != last[publisher] + 1) {
          errors[s] = "publisher " + std::to_string(publisher) + ": " + std::to_string(seq) +
                      " after " + std::to_string(last[publisher]);
          return;
        }
        last[publisher] = seq;
        ++count;
      }
    });
  }
  for (int p = 0; p < kPublishers; ++p) {
    threads.emplace_back([&, p] {
      RawClient pub(port_);
      pub.connect(make_connect("cpub" + std::to_string(p)));
      std::string burst;
      // QoS 1 and 0 alternately: a QoS 1 subscriber's queue then holds shared messages and
      // encoded QoS 0 packets in turn, and must keep their order.
      for (int i = 1; i <= kMessages; ++i) {
        const std::uint8_t qos = i % 2;
        mqtt::encode(publish_packet("c/" + std::to_string(p), std::to_string(i), qos,
                                    qos ? static_cast<std::uint16_t>(i) : 0),
                     burst);
      }
      pub.send_raw(burst);
      for (int i = 1; i <= kMessages; i += 2) pub.expect<mqtt::Puback>();
    });
  }
  for (auto& t : threads) t.join();
  for (int s = 0; s < kSubscribers; ++s) EXPECT_EQ(errors[s], "") << "subscriber " << s;
}

TEST(HubRestart, QoS2ExactlyOnceAcrossARestart) {
  const auto port = free_port();
  HubProcess hub(base_config(port), port);
  RawClient sub(port);
  subscribe_persistent(sub, "q2sub", "q2/#", 2);
  {
    RawClient pub(port);
    ASSERT_FALSE(pub.connect(make_connect("q2pub", false)).session_present);
    pub.send(mqtt::Publish{"q2/x", "once", 2, false, false, 77});
    EXPECT_EQ(pub.expect<mqtt::Pubrec>().packet_id, 77);
    // Gone before sending PUBREL.
  }
  auto m = sub.expect<mqtt::Publish>();
  EXPECT_EQ(m.payload, "once");
  sub.send(mqtt::Pubrec{m.packet_id});
  EXPECT_EQ(sub.expect<mqtt::Pubrel>().packet_id, m.packet_id);
  sub.send(mqtt::Pubcomp{m.packet_id});
  sub.send(mqtt::Pingreq{});
  sub.expect<mqtt::Pingresp>();  // the hub has handled the PUBCOMP
  sub.send(mqtt::Disconnect{});
  sub.close();
  restart(hub);

  RawClient again(port);
  EXPECT_TRUE(again.connect(make_connect("q2sub", false)).session_present);
  RawClient pub(port);
  EXPECT_TRUE(pub.connect(make_connect("q2pub", false)).session_present);
  // The publisher did not see PUBCOMP, so it sends the PUBLISH again with DUP.
  pub.send(mqtt::Publish{"q2/x", "once", 2, false, true, 77});
  EXPECT_EQ(pub.expect<mqtt::Pubrec>().packet_id, 77);
  pub.send(mqtt::Pubrel{77});
  EXPECT_EQ(pub.expect<mqtt::Pubcomp>().packet_id, 77);
  EXPECT_TRUE(again.silent_for(500ms));  // not delivered a second time
}

TEST(HubRestart, QoS2ReleasedDeliveryResumesWithPubrel) {
  const auto port = free_port();
  HubProcess hub(base_config(port), port);
  {
    RawClient sub(port);
    subscribe_persistent(sub, "relsub", "rel", 2);
    RawClient pub(port);
    pub.connect(make_connect("relpub"));
    pub.send(mqtt::Publish{"rel", "one", 2, false, false, 1});
    pub.expect<mqtt::Pubrec>();
    pub.send(mqtt::Pubrel{1});
    pub.expect<mqtt::Pubcomp>();
    auto m = sub.expect<mqtt::Publish>();
    sub.send(mqtt::Pubrec{m.packet_id});
    sub.expect<mqtt::Pubrel>();
    sub.send(mqtt::Pingreq{});
    sub.expect<mqtt::Pingresp>();  // PUBREC handled; PUBCOMP never sent
  }
  restart(hub);
  RawClient sub(port);
  EXPECT_TRUE(sub.connect(make_connect("relsub", false)).session_present);
  auto rel = sub.expect<mqtt::Pubrel>();  // not the message again
  sub.send(mqtt::Pubcomp{rel.packet_id});
  EXPECT_TRUE(sub.silent_for(300ms));
  sub.send(mqtt::Disconnect{});
  // Completed: nothing left after another restart.
  sub.close();
  restart(hub);
  RawClient again(port);
  EXPECT_TRUE(again.connect(make_connect("relsub", false)).session_present);
  EXPECT_TRUE(again.silent_for(300ms));
}
