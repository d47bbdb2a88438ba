// The MQTT client with `protocol: 5`: against a real MQTT 5 broker (Debian's mosquitto 2) and
// real mosquitto_pub peers, and against a broker played by hand for what mosquitto cannot provoke.
#include <signal.h>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <future>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "baetyl/config/reader.h"
#include "baetyl/mqtt/client.h"
#include "baetyl/mqtt/codec.h"
#include "baetyl/testing/config_error.h"
#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/ports.h"
#include "mqtt_test_support.h"

// The helpers of mqtt_test_support.h, with the client's names they use (Client, ClientConfig,
// Publish, error_code, ...).
using namespace baetyl::testing::mqtt;
using baetyl::mqtt::Connack;
using baetyl::mqtt::PropertyId;
using baetyl::mqtt::ProtocolVersion;
using baetyl::mqtt::ReasonCode;
using baetyl::mqtt::StringPair;
using baetyl::mqtt::TopicInfo;
using baetyl::testing::MosquittoBroker;
using baetyl::testing::MosquittoOptions;

namespace {

ClientConfig v5_config(const std::string& address, const std::string& client_id) {
  auto config = config_for(address, client_id);
  config.protocol = ProtocolVersion::V5;
  return config;
}

// Starts `client` delivering to `inbox` and, once connected, subscribes it to `topic` at QoS 1.
void start_subscribed(Client& client, Inbox& inbox, const std::string& topic) {
  client.start(inbox.callbacks());
  ASSERT_TRUE(client.wait_connected(5s));
  ASSERT_EQ(subscribe(client, {{topic, 1}}), std::vector<std::uint8_t>{1});
}

// Records the reasons the client gives in on_disconnected and on_connect_error.
class Events {
 public:
  ClientCallbacks callbacks(ClientCallbacks base = {}) {
    base.on_disconnected = [this](const std::string& reason) { add("disconnected: " + reason); };
    base.on_connect_error = [this](const std::string& reason) { add("connect error: " + reason); };
    return base;
  }
  // The first event containing `text`, waiting up to `timeout` for it.
  std::optional<std::string> wait_for(const std::string& text,
                                      std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mutex_);
    std::optional<std::string> found;
    changed_.wait_for(lock, timeout, [&] {
      for (const auto& e : events_) {
        if (e.find(text) != std::string::npos) found = e;
      }
      return found.has_value();
    });
    return found;
  }

 private:
  void add(std::string event) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
    changed_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> events_;
};

baetyl::mqtt::ClientConfig read_client_config(const std::string& yaml) {
  baetyl::config::Reader reader(YAML::Load(yaml), "service.yml");
  baetyl::mqtt::ClientConfig config;
  reader.read(config);
  reader.throw_if_errors();
  return config;
}

std::string config_error(const std::string& yaml) {
  return baetyl::testing::config_error([&] { read_client_config(yaml); });
}

// Bytes received and not yet read on the established loopback TCP connections whose local port
// is `port` (the broker's side), from /proc/net/tcp.
std::size_t unread_bytes(std::uint16_t port) {
  std::ifstream table("/proc/net/tcp");
  std::string line;
  std::getline(table, line);  // header
  std::size_t total = 0;
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues;
    fields >> slot >> local >> remote >> state >> queues;
    auto colon = local.find(':');
    if (colon == std::string::npos || state != "01") continue;  // 01: ESTABLISHED
    if (std::stoul(local.substr(colon + 1), nullptr, 16) != port) continue;
    total += std::stoul(queues.substr(queues.find(':') + 1), nullptr, 16);
  }
  return total;
}

class Mqtt5ClientTest : public ::testing::Test {
 protected:
  void SetUp() override { spdlog::set_level(spdlog::level::warn); }
};

}  // namespace

// ---- configuration ----

TEST(Mqtt5ClientConfigTest, ProtocolKeyAcceptsTheTwoVersionsAndRejectsTheRest) {
  EXPECT_EQ(read_client_config("address: tcp://h:1").protocol, ProtocolVersion::V311);
  for (const char* v311 : {"3.1.1", "4", "'4'"}) {
    EXPECT_EQ(read_client_config(std::string("protocol: ") + v311).protocol, ProtocolVersion::V311)
        << v311;
  }
  for (const char* v5 : {"5", "5.0", "'5'"}) {
    EXPECT_EQ(read_client_config(std::string("protocol: ") + v5).protocol, ProtocolVersion::V5)
        << v5;
  }
  EXPECT_EQ(config_error("protocol: 3.1"),
            "service.yml: protocol: '3.1' is not one of: 3.1.1, 4, 5, 5.0");
  EXPECT_EQ(config_error("protocol: mqttv5"),
            "service.yml: protocol: 'mqttv5' is not one of: 3.1.1, 4, 5, 5.0");
}

TEST(Mqtt5ClientConfigTest, SessionExpiryAndMaxPacketSizeAreMqtt5Keys) {
  auto config = read_client_config("protocol: 5\nsessionexpiry: 1h\nmaxpacketsize: 64k");
  EXPECT_EQ(config.session_expiry, std::chrono::hours(1));
  EXPECT_EQ(config.max_packet_size->bytes, 65536u);
  EXPECT_EQ(baetyl::mqtt::session_expiry_interval(config), 3600u);
  config.session_expiry.reset();
  EXPECT_EQ(baetyl::mqtt::session_expiry_interval(config), 0xFFFFFFFFu) << "never expires";
  config.clean_session = true;
  EXPECT_EQ(baetyl::mqtt::session_expiry_interval(config), 0u);
  EXPECT_EQ(baetyl::mqtt::session_expiry_interval(read_client_config("sessionexpiry: 0s\n"
                                                                     "protocol: 5")),
            0u);

  EXPECT_EQ(config_error("sessionexpiry: 1h"),
            "service.yml: sessionexpiry: needs protocol: 5 (MQTT 3.1.1 has no session expiry)");
  EXPECT_EQ(config_error("protocol: 5\ncleansession: true\nsessionexpiry: 1h"),
            "service.yml: sessionexpiry: needs cleansession: false (a clean session ends with the "
            "connection)");
  EXPECT_EQ(config_error("protocol: 5\nsessionexpiry: 1500ms"),
            "service.yml: sessionexpiry: must be a whole number of seconds");
  EXPECT_EQ(config_error("protocol: 5\nsessionexpiry: 4294967295s"),
            "service.yml: sessionexpiry: must be at most 4294967294s (leave it out for a session "
            "that never expires)");
  EXPECT_EQ(config_error("protocol: 5\nsessionexpiry: -1s"),
            "service.yml: sessionexpiry: must not be negative");
  EXPECT_EQ(config_error("maxpacketsize: 1k"),
            "service.yml: maxpacketsize: needs protocol: 5 (MQTT 3.1.1 has no maximum packet "
            "size)");
  EXPECT_EQ(config_error("protocol: 5\nmaxpacketsize: 1g"),
            "service.yml: maxpacketsize: must be between 1b and 268435460b, the largest packet "
            "MQTT can carry");
}

// ---- against mosquitto 2 (MQTT 5) ----

TEST_F(Mqtt5ClientTest, ConnectsWithMqtt5AndRoundTripsPropertiesAtQos0And1) {
  MosquittoBroker broker;
  Inbox inbox;
  Client subscriber(v5_config(broker.address(), "v5-sub"));
  ASSERT_NO_FATAL_FAILURE(start_subscribed(subscriber, inbox, "v5/#"));

  Client publisher(v5_config(broker.address(), "v5-pub"));
  publisher.start();
  ASSERT_TRUE(publisher.wait_connected(5s));
  for (int qos : {0, 1}) {
    Publish p = message("v5/q" + std::to_string(qos), "payload " + std::to_string(qos), qos);
    p.properties.add(PropertyId::MessageExpiryInterval, 60)
        .add(PropertyId::ContentType, "text/plain")
        .add(PropertyId::ResponseTopic, "v5/replies")
        .add(PropertyId::CorrelationData, std::string("\x01\x00\x02", 3))
        .add_user("line", "4")
        .add_user("line", "5");
    auto done = publish_async(publisher, p);
    ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
    EXPECT_FALSE(done.get());
  }
  auto received = inbox.wait_for(2);
  ASSERT_EQ(received.size(), 2u);
  for (int qos : {0, 1}) {
    const auto& m = received[static_cast<std::size_t>(qos)].publish;
    EXPECT_EQ(m.topic, "v5/q" + std::to_string(qos));
    EXPECT_EQ(m.qos, qos);
    EXPECT_EQ(m.properties.string(PropertyId::ContentType), "text/plain");
    EXPECT_EQ(m.properties.string(PropertyId::ResponseTopic), "v5/replies");
    EXPECT_EQ(m.properties.string(PropertyId::CorrelationData), std::string("\x01\x00\x02", 3));
    EXPECT_EQ(m.properties.user_properties(),
              (std::vector<StringPair>{{"line", "4"}, {"line", "5"}}));
    auto expiry = m.properties.integer(PropertyId::MessageExpiryInterval);
    ASSERT_TRUE(expiry.has_value()) << "mosquitto passes the remaining expiry on";
    EXPECT_GE(*expiry, 58u);
    EXPECT_LE(*expiry, 60u);
  }
  // The broker saw MQTT 5 connections (p5 in its log line).
  EXPECT_NE(broker.log().find("as v5-pub (p5"), std::string::npos) << broker.log();
}

TEST_F(Mqtt5ClientTest, ReceivesThePropertiesMosquittoPubSendsWithMqtt5) {
  MosquittoBroker broker;
  Inbox inbox;
  Client client(v5_config(broker.address(), "v5-reader"));
  ASSERT_NO_FATAL_FAILURE(start_subscribed(client, inbox, "in/#"));
  ASSERT_EQ(baetyl::testing::mosquitto_pub(
                broker.port(), "in/x", "{\"t\":1}", 1,
                {"-V", "mqttv5", "-D", "publish", "user-property", "site", "north", "-D", "publish",
                 "content-type", "application/json", "-D", "publish", "message-expiry-interval",
                 "120", "-D", "publish", "payload-format-indicator", "1"}),
            0);
  auto received = inbox.wait_for(1);
  ASSERT_EQ(received.size(), 1u);
  const auto& p = received[0].publish.properties;
  EXPECT_EQ(received[0].publish.payload, "{\"t\":1}");
  EXPECT_EQ(p.user_properties(), (std::vector<StringPair>{{"site", "north"}}));
  EXPECT_EQ(p.string(PropertyId::ContentType), "application/json");
  EXPECT_EQ(p.integer(PropertyId::PayloadFormatIndicator), 1u);
  EXPECT_LE(p.integer(PropertyId::MessageExpiryInterval).value_or(0), 120u);
  EXPECT_GE(p.integer(PropertyId::MessageExpiryInterval).value_or(0), 118u);
}

TEST_F(Mqtt5ClientTest, APersistentSessionIsResumedWithItsQueuedQos1Messages) {
  MosquittoBroker broker;
  auto config = v5_config(broker.address(), "v5-persistent");
  config.clean_session = false;  // sessionexpiry unset: the session never expires
  {
    Client client(config);
    client.start();
    ASSERT_TRUE(client.wait_connected(5s));
    ASSERT_EQ(subscribe(client, {{"queued", 1}}), std::vector<std::uint8_t>{1});
    client.stop();
  }
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "queued", std::to_string(i), 1), 0);
  }
  Inbox inbox;
  std::promise<bool> present;
  auto callbacks = inbox.callbacks();
  callbacks.on_connected = [&](bool session_present) { present.set_value(session_present); };
  Client client(config);
  client.start(callbacks);
  auto future = present.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(future.get()) << "the broker kept the session";
  auto received = inbox.wait_for(5);
  ASSERT_EQ(received.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(received[i].publish.payload, std::to_string(i));
}

TEST_F(Mqtt5ClientTest, AnAssignedClientIdentifierResumesTheSessionAfterAReconnect) {
  MosquittoBroker broker;
  auto config = v5_config(broker.address(), "");  // mosquitto assigns one
  config.clean_session = false;
  config.subscriptions = {{"kept", 1}};
  std::mutex mutex;
  std::vector<bool> connections;  // session present, per connection
  Inbox inbox;
  auto callbacks = inbox.callbacks();
  callbacks.on_connected = [&](bool present) {
    std::lock_guard lock(mutex);
    connections.push_back(present);
  };
  Client client(config);
  client.start(callbacks);
  ASSERT_TRUE(client.wait_connected(5s));
  ASSERT_EQ(subscribe(client, {{"kept", 1}}), std::vector<std::uint8_t>{1});
  broker.stop();  // persists the session; the client loses its connection
  broker.start();
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mutex);
    return connections.size() >= 2;
  }));
  {
    std::lock_guard lock(mutex);
    EXPECT_FALSE(connections[0]);
    EXPECT_TRUE(connections[1]) << "the reconnection used the assigned identifier";
  }
  EXPECT_NE(broker.log().find("as auto-"), std::string::npos);
}

TEST_F(Mqtt5ClientTest, SessionExpiryEndsTheSessionAfterTheInterval) {
  MosquittoBroker broker;
  auto config = v5_config(broker.address(), "v5-expiring");
  config.clean_session = false;
  config.session_expiry = 1s;
  auto connect_and_report = [&] {
    std::promise<bool> present;
    ClientCallbacks callbacks;
    callbacks.on_connected = [&](bool session_present) { present.set_value(session_present); };
    Client client(config);
    client.start(callbacks);
    auto future = present.get_future();
    bool ready = future.wait_for(5s) == std::future_status::ready;
    client.stop();
    return ready && future.get();
  };
  EXPECT_FALSE(connect_and_report());
  EXPECT_TRUE(connect_and_report()) << "back within the interval: the session is there";
  std::this_thread::sleep_for(2500ms);
  EXPECT_FALSE(connect_and_report()) << "back after the interval: the session has expired";
  EXPECT_NE(broker.log().find("v5-expiring"), std::string::npos);
}

TEST_F(Mqtt5ClientTest, ASharedSubscriptionGivesEachMessageToOneOfTwoClients) {
  MosquittoBroker broker;
  Inbox first_inbox;
  Inbox second_inbox;
  Client first(v5_config(broker.address(), "worker-1"));
  Client second(v5_config(broker.address(), "worker-2"));
  first.start(first_inbox.callbacks());
  second.start(second_inbox.callbacks());
  ASSERT_TRUE(first.wait_connected(5s));
  ASSERT_TRUE(second.wait_connected(5s));
  ASSERT_EQ(subscribe(first, {{"$share/workers/jobs/#", 1}}), std::vector<std::uint8_t>{1});
  ASSERT_EQ(subscribe(second, {{"$share/workers/jobs/#", 1}}), std::vector<std::uint8_t>{1});

  constexpr int kJobs = 40;
  Client producer(v5_config(broker.address(), "producer"));
  producer.start();
  for (int i = 0; i < kJobs; ++i) producer.publish("jobs/a", std::to_string(i), 1);
  ASSERT_TRUE(producer.wait_idle(5s));

  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (first_inbox.snapshot().size() + second_inbox.snapshot().size() < kJobs &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(300ms);  // nothing more may come
  std::multiset<std::string> all;
  for (const auto& m : first_inbox.snapshot()) all.insert(m.publish.payload);
  for (const auto& m : second_inbox.snapshot()) all.insert(m.publish.payload);
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kJobs)) << "each message exactly once";
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), static_cast<std::size_t>(kJobs));
  EXPECT_GT(first_inbox.snapshot().size(), 0u) << "the group shares the work";
  EXPECT_GT(second_inbox.snapshot().size(), 0u) << "the group shares the work";
}

TEST_F(Mqtt5ClientTest, TheBrokersReceiveMaximumBoundsTheMessagesInFlight) {
  // mosquitto announces max_inflight_messages as its Receive Maximum.
  MosquittoBroker broker(MosquittoOptions{.extra_config = "max_inflight_messages 3\n"});
  auto config = v5_config(broker.address(), "bounded");
  config.buffer_size = 50;
  Client client(config);
  client.start();
  ASSERT_TRUE(client.wait_connected(5s));
  // With the broker frozen, what the client wrote waits unread in the broker's socket.
  ASSERT_EQ(::kill(broker.pid(), SIGSTOP), 0);
  std::atomic<int> acked{0};
  std::atomic<int> failed{0};
  for (int i = 0; i < 200; ++i) {
    client.async_publish(message("bounded", std::to_string(i), 1),
                         [&](error_code ec) { ec ? ++failed : ++acked; });
  }
  std::this_thread::sleep_for(500ms);
  const std::size_t unread = unread_bytes(broker.port());
  ::kill(broker.pid(), SIGCONT);
  std::size_t three = 0;
  for (int i = 0; i < 3; ++i) {
    Publish p = message("bounded", std::to_string(i), 1);
    p.packet_id = static_cast<std::uint16_t>(i + 1);
    three += baetyl::mqtt::encoded_size(p, ProtocolVersion::V5);
  }
  EXPECT_EQ(unread, three) << "the client must write 3 messages (the Receive Maximum), not more";
  ASSERT_TRUE(client.wait_idle(10s));
  EXPECT_EQ(acked.load(), 200);
  EXPECT_EQ(failed.load(), 0);
}

TEST_F(Mqtt5ClientTest, APubackWithAFailureReasonFailsThePublish) {
  MosquittoBroker broker(MosquittoOptions{.acl = "topic readwrite allowed/#"});
  Client client(v5_config(broker.address(), "acl-v5"));
  client.start();
  ASSERT_TRUE(client.wait_connected(5s));
  auto allowed = publish_async(client, message("allowed/x", "ok", 1));
  auto denied = publish_async(client, message("denied/x", "no", 1));
  ASSERT_EQ(allowed.wait_for(5s), std::future_status::ready);
  ASSERT_EQ(denied.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(allowed.get());
  error_code ec = denied.get();
  EXPECT_EQ(ec, baetyl::mqtt::make_error_code(ReasonCode::NotAuthorized));
  EXPECT_EQ(ec.message(), "Not authorized (0x87)");
  EXPECT_TRUE(client.connected()) << "a refused message does not end the connection";
  EXPECT_TRUE(client.wait_idle(1s));
}

TEST_F(Mqtt5ClientTest, AMessageLargerThanTheBrokersMaximumPacketSizeIsNotSent) {
  MosquittoBroker broker(MosquittoOptions{.extra_config = "max_packet_size 1000\n"});
  auto config = v5_config(broker.address(), "big");
  Client client(config);
  // Queued before the client knows the broker's limit: refused when it would be written.
  auto early = publish_async(client, message("big", std::string(2000, 'x'), 1));
  client.start();
  ASSERT_EQ(early.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(early.get(), baetyl::mqtt::make_error_code(ReasonCode::PacketTooLarge));
  ASSERT_TRUE(client.wait_connected(5s));
  EXPECT_EQ(client.broker_maximum_packet_size(), 1000u);
  // Known now: refused at once, with the sizes.
  try {
    client.publish("big", std::string(2000, 'x'), 1);
    ADD_FAILURE() << "a message over the limit was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "cannot publish: the message is 2011 bytes, more than the broker's maximum "
                 "packet size of 1000");
  }
  auto small = publish_async(client, message("big", std::string(900, 'x'), 1));
  ASSERT_EQ(small.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(small.get());
  EXPECT_TRUE(client.connected()) << "the broker never saw an oversized packet";
}

TEST_F(Mqtt5ClientTest, TheBrokerSendsNothingLargerThanMaxPacketSize) {
  MosquittoBroker broker;
  auto config = v5_config(broker.address(), "small-only");
  config.max_packet_size = baetyl::config::ByteSize{200};
  Inbox inbox;
  Client client(config);
  ASSERT_NO_FATAL_FAILURE(start_subscribed(client, inbox, "sizes"));
  ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "sizes", std::string(500, 'L'), 1), 0);
  ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "sizes", "small", 1), 0);
  auto received = inbox.wait_for(1);
  std::this_thread::sleep_for(300ms);
  received = inbox.snapshot();
  ASSERT_EQ(received.size(), 1u) << "mosquitto drops for this client what exceeds its limit";
  EXPECT_EQ(received[0].publish.payload, "small");
  EXPECT_TRUE(client.connected());
}

TEST_F(Mqtt5ClientTest, SubscriptionOptionsReachTheBroker) {
  MosquittoBroker broker;
  Inbox inbox;
  Client client(v5_config(broker.address(), "options"));
  client.start(inbox.callbacks());
  ASSERT_TRUE(client.wait_connected(5s));
  // No Local: our own messages do not come back; Retain As Published keeps the retain flag.
  TopicInfo own{"loop/#", 1};
  own.no_local = true;
  own.retain_as_published = true;
  ASSERT_EQ(subscribe(client, {own}), std::vector<std::uint8_t>{1});
  client.publish("loop/mine", "mine", 1);
  ASSERT_TRUE(client.wait_idle(5s));
  ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "loop/theirs", "theirs", 1, {"-r"}), 0);
  auto received = inbox.wait_for(1);
  std::this_thread::sleep_for(300ms);
  received = inbox.snapshot();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].publish.payload, "theirs");
  EXPECT_TRUE(received[0].publish.retain) << "Retain As Published";

  // Retain Handling 2: no retained message at subscription time.
  TopicInfo no_retained{"loop/theirs", 0};
  no_retained.retain_handling = 2;
  client.unsubscribe({"loop/#"});
  ASSERT_EQ(subscribe(client, {no_retained}), std::vector<std::uint8_t>{0});
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(inbox.snapshot().size(), 1u) << "the retained message was sent anyway";
  TopicInfo with_retained{"loop/+", 0};
  ASSERT_EQ(subscribe(client, {with_retained}), std::vector<std::uint8_t>{0});
  EXPECT_EQ(inbox.wait_for(2).size(), 2u) << "Retain Handling 0 sends the retained message";
}

TEST_F(Mqtt5ClientTest, OptionsAndPropertiesNeedProtocol5) {
  Client client(config_for("tcp://127.0.0.1:1", "v311"));
  Publish with_properties = message("t", "x", 1);
  with_properties.properties.add_user("k", "v");
  EXPECT_THROW(client.async_publish(with_properties), std::invalid_argument);
  TopicInfo no_local{"t", 0};
  no_local.no_local = true;
  EXPECT_THROW(client.subscribe({no_local}), std::invalid_argument);

  Client v5(v5_config("tcp://127.0.0.1:1", "v5"));
  Publish alias = message("t", "x", 0);
  alias.properties.add(PropertyId::TopicAlias, 1);
  EXPECT_THROW(v5.async_publish(alias), std::invalid_argument);
  TopicInfo shared_no_local{"$share/g/t", 0};
  shared_no_local.no_local = true;
  EXPECT_THROW(v5.subscribe({shared_no_local}), std::invalid_argument);
  EXPECT_NO_THROW(v5.async_publish(with_properties));
}

// ---- against a broker played by hand ----

TEST_F(Mqtt5ClientTest, ConnectCarriesSessionExpiryReceiveMaximumAndMaximumPacketSize) {
  ScriptedBroker broker(ProtocolVersion::V5);
  auto config = v5_config(broker.address(), "props");
  config.clean_session = false;
  config.session_expiry = std::chrono::hours(2);
  config.buffer_size = 25;
  config.max_packet_size = baetyl::config::ByteSize{4096};
  Client client(config);
  client.start();
  auto connect = broker.accept_connect();
  EXPECT_EQ(connect.protocol_level, 5);
  EXPECT_EQ(connect.client_id, "props");
  EXPECT_FALSE(connect.clean_session);
  EXPECT_EQ(connect.properties.integer(PropertyId::SessionExpiryInterval), 7200u);
  EXPECT_EQ(connect.properties.integer(PropertyId::ReceiveMaximum), 25u);
  EXPECT_EQ(connect.properties.integer(PropertyId::MaximumPacketSize), 4096u);
  client.stop();

  ScriptedBroker second(ProtocolVersion::V5);
  auto defaults = v5_config(second.address(), "defaults");
  defaults.clean_session = false;
  Client other(defaults);
  other.start();
  auto plain = second.accept_connect();
  EXPECT_EQ(plain.properties.integer(PropertyId::SessionExpiryInterval), 0xFFFFFFFFu);
  EXPECT_EQ(plain.properties.integer(PropertyId::ReceiveMaximum), 10u);
  EXPECT_FALSE(plain.properties.find(PropertyId::MaximumPacketSize));
}

TEST_F(Mqtt5ClientTest, ARefusingConnackIsReportedWithItsReasonAndReasonString) {
  ScriptedBroker broker(ProtocolVersion::V5);
  Events events;
  Client client(v5_config(broker.address(), "refused"));
  client.start(events.callbacks());
  Connack refusal;
  refusal.reason_code = ReasonCode::NotAuthorized;
  refusal.properties.add(PropertyId::ReasonString, "not on the list");
  broker.accept_client(refusal);
  auto error = events.wait_for("connect error");
  ASSERT_TRUE(error);
  EXPECT_EQ(*error, "connect error: connection refused: Not authorized (0x87): not on the list");
  EXPECT_FALSE(client.connected());
}

TEST_F(Mqtt5ClientTest, ABrokerWithoutMqtt5IsNamedAsSuch) {
  ScriptedBroker broker(ProtocolVersion::V311);
  Events events;
  Client client(v5_config(broker.address(), "too-new"));
  client.start(events.callbacks());
  auto connect = broker.accept_connect();
  EXPECT_EQ(connect.protocol_level, 5);
  Connack old;
  old.return_code = baetyl::mqtt::ConnectReturnCode::UnacceptableProtocolVersion;
  broker.send(old);
  auto error = events.wait_for("connect error");
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("the broker answered with an MQTT 3.1.1 CONNACK (unacceptable protocol "
                        "version): it does not speak MQTT 5; set protocol: 3.1.1"),
            std::string::npos)
      << *error;
}

TEST_F(Mqtt5ClientTest, ConnackLimitsAreHonoured) {
  ScriptedBroker broker(ProtocolVersion::V5);
  auto config = v5_config(broker.address(), "");  // the broker assigns one
  config.clean_session = false;
  config.keepalive = 60s;
  config.buffer_size = 10;
  Client client(config);
  client.start();
  auto first = broker.accept_connect();
  EXPECT_EQ(first.client_id, "");
  Connack connack;
  connack.properties.add(PropertyId::AssignedClientIdentifier, "auto-7")
      .add(PropertyId::ServerKeepAlive, 1)
      .add(PropertyId::ReceiveMaximum, 2);
  broker.send(connack);
  ASSERT_TRUE(client.wait_connected(5s));

  // Receive Maximum 2: two QoS 1 messages in flight, the third waits for a PUBACK.
  std::vector<std::future<error_code>> done;
  for (int i = 0; i < 3; ++i) done.push_back(publish_async(client, message("t", "m", 1)));
  std::vector<std::uint16_t> ids;
  for (int i = 0; i < 2; ++i) {
    auto packet = broker.next();
    ASSERT_TRUE(std::holds_alternative<Publish>(packet));
    ids.push_back(std::get<Publish>(packet).packet_id);
  }
  // Server Keep Alive 1 s instead of our 60 s: the next packet is a PINGREQ, within 1.5 s.
  auto begin = std::chrono::steady_clock::now();
  auto ping = broker.next_within(1500ms);
  ASSERT_TRUE(ping.has_value()) << "no PINGREQ: Server Keep Alive ignored";
  EXPECT_TRUE(std::holds_alternative<baetyl::mqtt::Pingreq>(*ping))
      << "a third message went out beyond the Receive Maximum";
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 1500ms);
  broker.send(baetyl::mqtt::Pingresp{});
  broker.send(baetyl::mqtt::Puback{ids[0]});
  auto third = broker.next();
  ASSERT_TRUE(std::holds_alternative<Publish>(third));
  EXPECT_EQ(done[0].wait_for(5s), std::future_status::ready);

  // A reconnect uses the assigned identifier, to resume that session.
  broker.drop_client();
  auto second = broker.accept_connect();
  EXPECT_EQ(second.client_id, "auto-7");
  EXPECT_FALSE(second.clean_session);
}

TEST_F(Mqtt5ClientTest, TheBrokersDisconnectIsReportedAndTheClientReconnects) {
  ScriptedBroker broker(ProtocolVersion::V5);
  Events events;
  Client client(v5_config(broker.address(), "taken"));
  client.start(events.callbacks());
  broker.accept_client();
  ASSERT_TRUE(client.wait_connected(5s));
  baetyl::mqtt::Disconnect disconnect;
  disconnect.reason_code = ReasonCode::SessionTakenOver;
  disconnect.properties.add(PropertyId::ReasonString, "another connection with this id");
  broker.send(disconnect);
  auto reason = events.wait_for("disconnected");
  ASSERT_TRUE(reason);
  EXPECT_EQ(*reason,
            "disconnected: the broker disconnected: Session taken over (0x8E): another "
            "connection with this id");
  broker.accept_client();  // the client comes back, as after any lost connection
  EXPECT_TRUE(client.wait_connected(5s));
}

TEST_F(Mqtt5ClientTest, AMalformedPacketFromTheBrokerIsAnsweredWithDisconnect) {
  ScriptedBroker broker(ProtocolVersion::V5);
  Events events;
  Client client(v5_config(broker.address(), "strict"));
  client.start(events.callbacks());
  broker.accept_client();
  ASSERT_TRUE(client.wait_connected(5s));
  // A PUBLISH with property 0x7F, which MQTT 5 does not define: Malformed Packet.
  broker.send_bytes(std::string("\x30\x07\x00\x01t\x02\x7f\x00x", 9));
  auto answer = broker.next();
  ASSERT_TRUE(std::holds_alternative<baetyl::mqtt::Disconnect>(answer));
  EXPECT_EQ(std::get<baetyl::mqtt::Disconnect>(answer).reason_code, ReasonCode::MalformedPacket);
  auto reason = events.wait_for("disconnected");
  ASSERT_TRUE(reason);
  EXPECT_NE(reason->find("protocol error from broker"), std::string::npos) << *reason;
  EXPECT_NE(reason->find("(sent DISCONNECT Malformed Packet (0x81))"), std::string::npos)
      << *reason;
}

TEST_F(Mqtt5ClientTest, ARefusedSubscriptionNamesItsReason) {
  ScriptedBroker broker(ProtocolVersion::V5);
  auto config = v5_config(broker.address(), "validating");
  config.validate_subs = true;
  config.subscriptions = {{"ok", 1}, {"secret", 1}};
  std::promise<std::string> error;
  ClientCallbacks callbacks;
  callbacks.on_error = [&](const std::string& e) { error.set_value(e); };
  Client client(config);
  client.start(callbacks);
  broker.accept_client();
  auto packet = broker.next();
  ASSERT_TRUE(std::holds_alternative<baetyl::mqtt::Subscribe>(packet));
  baetyl::mqtt::Suback suback;
  suback.packet_id = std::get<baetyl::mqtt::Subscribe>(packet).packet_id;
  suback.return_codes = {1, static_cast<std::uint8_t>(ReasonCode::NotAuthorized)};
  broker.send(suback);
  auto future = error.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(future.get(),
            "broker refused subscription to secret (Not authorized (0x87)) (validatesubs is on)");
}

TEST_F(Mqtt5ClientTest, APubackSuccessCodeBelow0x80IsASuccess) {
  ScriptedBroker broker(ProtocolVersion::V5);
  Client client(v5_config(broker.address(), "no-subscribers"));
  client.start();
  broker.accept_client();
  auto done = publish_async(client, message("nobody", "x", 1));
  auto packet = broker.next();
  ASSERT_TRUE(std::holds_alternative<Publish>(packet));
  baetyl::mqtt::Puback puback{
      std::get<Publish>(packet).packet_id, ReasonCode::NoMatchingSubscribers, {}};
  broker.send(puback);
  ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(done.get()) << "0x10 No matching subscribers is not a failure";
}

TEST_F(Mqtt5ClientTest, MaximumQosAndRetainAvailableOfTheConnackAreHonoured) {
  ScriptedBroker broker(ProtocolVersion::V5);
  Client client(v5_config(broker.address(), "limited"));
  client.start();
  Connack connack;
  connack.properties.add(PropertyId::MaximumQos, 0).add(PropertyId::RetainAvailable, 0);
  broker.accept_client(connack);
  ASSERT_TRUE(client.wait_connected(5s));
  auto qos1 = publish_async(client, message("t", "one", 1));
  Publish retained = message("t", "kept", 0);
  retained.retain = true;
  auto kept = publish_async(client, retained);
  auto plain = publish_async(client, message("t", "plain", 0));
  ASSERT_EQ(qos1.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(qos1.get(), baetyl::mqtt::make_error_code(ReasonCode::QosNotSupported));
  ASSERT_EQ(kept.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(kept.get(), baetyl::mqtt::make_error_code(ReasonCode::RetainNotSupported));
  ASSERT_EQ(plain.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(plain.get());
  auto packet = broker.next();
  ASSERT_TRUE(std::holds_alternative<Publish>(packet));
  EXPECT_EQ(std::get<Publish>(packet).payload, "plain") << "only the allowed message is sent";
}

TEST_F(Mqtt5ClientTest, APacketOverMaxPacketSizeIsAnsweredWithDisconnect) {
  ScriptedBroker broker(ProtocolVersion::V5);
  auto config = v5_config(broker.address(), "small");
  config.max_packet_size = baetyl::config::ByteSize{100};
  Events events;
  Client client(config);
  client.start(events.callbacks());
  broker.accept_client();
  ASSERT_TRUE(client.wait_connected(5s));
  broker.send(message("big", std::string(200, 'x'), 0));
  auto answer = broker.next();
  ASSERT_TRUE(std::holds_alternative<baetyl::mqtt::Disconnect>(answer));
  EXPECT_EQ(std::get<baetyl::mqtt::Disconnect>(answer).reason_code, ReasonCode::PacketTooLarge);
  auto reason = events.wait_for("disconnected");
  ASSERT_TRUE(reason);
  EXPECT_NE(reason->find("(sent DISCONNECT Packet too large (0x95))"), std::string::npos)
      << *reason;
}
