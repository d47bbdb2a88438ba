// The MQTT client against a real broker (Debian's mosquitto) and real mosquitto_pub/sub peers.
#include "baetyl/mqtt/client.h"
#include "baetyl/mqtt/codec.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <future>
#include <set>

#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/temp_dir.h"
#include "baetyl/testing/tls.h"
#include "mqtt_test_support.h"

// The helpers of mqtt_test_support.h, with the client's names they use (Client, ClientConfig,
// Publish, error_code, ...).
using namespace baetyl::testing::mqtt;
using baetyl::mqtt::TopicInfo;
using baetyl::testing::MosquittoBroker;
using baetyl::testing::MosquittoOptions;
using baetyl::testing::MosquittoSubscriber;
using baetyl::testing::SubscriberOptions;

namespace {

// Whether a client with `config` connects within `timeout`.
bool connects_within(const ClientConfig& config, std::chrono::milliseconds timeout) {
  Client client(config);
  client.start();
  return client.wait_connected(timeout);
}

// A TCP listener that accepts and immediately closes connections, recording when they came.
class RefusingServer {
 public:
  RefusingServer() {
    thread_ = std::thread([this] {
      for (;;) {
        int client = ::accept(listener_.fd(), nullptr, nullptr);
        if (client < 0) return;
        {
          std::lock_guard lock(mutex_);
          accepted_.push_back(std::chrono::steady_clock::now());
        }
        ::close(client);
      }
    });
  }
  ~RefusingServer() {
    listener_.close();
    thread_.join();
  }
  std::uint16_t port() const { return listener_.port(); }
  std::vector<std::chrono::steady_clock::time_point> accepted() {
    std::lock_guard lock(mutex_);
    return accepted_;
  }

 private:
  baetyl::testing::LoopbackListener listener_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::chrono::steady_clock::time_point> accepted_;
};

bool eventually_equal(const std::atomic<int>& value, int expected,
                      std::chrono::milliseconds timeout = 5s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (value.load() != expected && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  return value.load() == expected;
}

class MqttClientTest : public ::testing::Test {
 protected:
  void SetUp() override { spdlog::set_level(spdlog::level::warn); }
};

}  // namespace

TEST_F(MqttClientTest, PublishesQos0AndQos1ToARealSubscriber) {
  MosquittoBroker broker;
  MosquittoSubscriber sub(broker.port(), SubscriberOptions{.topic = "t/#", .qos = 1});
  Client client(config_for(broker.address(), "pub-1"));
  client.start();
  ASSERT_TRUE(client.wait_connected(5s));

  auto q0 = publish_async(client, message("t/a", "zero", 0));
  auto q1 = publish_async(client, message("t/b", "one", 1));
  ASSERT_EQ(q0.wait_for(5s), std::future_status::ready);
  ASSERT_EQ(q1.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(q0.get());
  EXPECT_FALSE(q1.get());
  EXPECT_EQ(sub.wait_for(2), (std::vector<std::string>{"zero", "one"}));
  EXPECT_EQ(client.outstanding(), 0u);
}

TEST_F(MqttClientTest, TryPublishRunsDoneOnceAcknowledgedOrWithAnErrorAtStop) {
  MosquittoBroker broker;
  Client client(config_for(broker.address(), "try-1"));
  client.start();
  ASSERT_TRUE(client.wait_connected(5s));
  auto acknowledged = std::make_shared<std::promise<error_code>>();
  ASSERT_TRUE(client.try_publish(message("t/a", "one", 1), 1s,
                                 [acknowledged](error_code ec) { acknowledged->set_value(ec); }));
  auto done = acknowledged->get_future();
  ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(done.get());
  client.stop();

  // Never connected (nothing listens there): the queued message ends with an error at stop.
  Client offline(
      config_for("tcp://127.0.0.1:" + std::to_string(baetyl::testing::free_port()), "try-2"));
  offline.start();
  auto aborted = std::make_shared<std::promise<error_code>>();
  ASSERT_TRUE(offline.try_publish(message("t/a", "two", 1), 1s,
                                  [aborted](error_code ec) { aborted->set_value(ec); }));
  offline.stop();
  auto failed = aborted->get_future();
  ASSERT_EQ(failed.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(failed.get());
}

TEST_F(MqttClientTest, ReceivesSubscribedMessagesAtTheirQos) {
  MosquittoBroker broker;
  auto config = config_for(broker.address(), "sub-1");
  config.subscriptions = {{"in/q0", 0}, {"in/q1/+", 1}};
  Inbox inbox;
  Client client(config);
  std::promise<void> subscribed;
  auto callbacks = inbox.callbacks();
  client.start(callbacks);
  ASSERT_TRUE(client.wait_connected(5s));
  // The SUBACK arrives shortly after CONNACK; a no-op subscribe round-trip orders after it.
  std::promise<std::vector<std::uint8_t>> granted;
  client.subscribe({{"in/extra", 0}}, [&](error_code, std::vector<std::uint8_t> codes) {
    granted.set_value(codes);
  });
  ASSERT_EQ(granted.get_future().get(), std::vector<std::uint8_t>{0});

  ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "in/q0", "hello", 0), 0);
  ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "in/q1/x", "{\"id\":1}", 1), 0);
  ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "in/extra", "more", 1), 0);
  ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "other", "ignored", 1), 0);
  auto received = inbox.wait_for(3);
  ASSERT_EQ(received.size(), 3u);
  EXPECT_EQ(received[0].publish.topic, "in/q0");
  EXPECT_EQ(received[0].publish.payload, "hello");
  EXPECT_EQ(received[0].publish.qos, 0);
  EXPECT_EQ(received[1].publish.topic, "in/q1/x");
  EXPECT_EQ(received[1].publish.payload, "{\"id\":1}");
  EXPECT_EQ(received[1].publish.qos, 1);
  EXPECT_EQ(received[2].publish.payload, "more");
  EXPECT_EQ(received[2].publish.qos, 0) << "delivered QoS is the minimum of publish and subscribe";
}

TEST_F(MqttClientTest, ManualAckLeavesUnackedMessagesWithTheBroker) {
  MosquittoBroker broker;
  auto config = config_for(broker.address(), "manual-ack");
  config.clean_session = false;
  config.subscriptions = {{"work", 1}};
  {
    Inbox inbox;
    Client client(config);
    client.start(inbox.callbacks(/*manual_ack=*/true));
    ASSERT_TRUE(client.wait_connected(5s));
    std::promise<void> ready;
    client.subscribe({{"work", 1}}, [&](error_code, auto) { ready.set_value(); });
    ready.get_future().wait();
    ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "work", "job-1", 1), 0);
    ASSERT_EQ(inbox.wait_for(1).size(), 1u);
    client.stop();  // never acknowledged
  }
  {
    Inbox inbox;
    Client client(config);
    client.start(inbox.callbacks(/*manual_ack=*/true));
    auto redelivered = inbox.wait_for(1);
    ASSERT_EQ(redelivered.size(), 1u) << "the unacknowledged message must come again";
    EXPECT_EQ(redelivered[0].publish.payload, "job-1");
    EXPECT_TRUE(redelivered[0].publish.dup);
    client.ack(redelivered[0]);
    std::this_thread::sleep_for(300ms);  // let the PUBACK reach the broker
    client.stop();
  }
  {
    Inbox inbox;
    Client client(config);
    client.start(inbox.callbacks(true));
    ASSERT_TRUE(client.wait_connected(5s));
    std::this_thread::sleep_for(700ms);
    EXPECT_TRUE(inbox.snapshot().empty()) << "an acknowledged message must not come again";
  }
}

TEST_F(MqttClientTest, UsernameAndPasswordAreChecked) {
  MosquittoBroker broker(MosquittoOptions{.username = "edge", .password = "s3cret"});
  auto config = config_for(broker.address(), "auth");
  config.username = "edge";
  config.password = "wrong";
  {
    Client client(config);
    client.start();
    EXPECT_FALSE(client.wait_connected(1500ms));
  }
  config.password = "s3cret";
  Client client(config);
  client.start();
  EXPECT_TRUE(client.wait_connected(5s));
}

TEST_F(MqttClientTest, ReconnectsAfterBrokerRestartWithoutLosingQos1) {
  MosquittoBroker broker;
  // A persistent subscriber session that is offline while we publish: the broker queues every
  // message for it (and keeps the queue across its own restart).
  { MosquittoSubscriber register_session(broker.port(), {.topic = "data", .qos = 1,
                                                         .client_id = "verifier",
                                                         .clean_session = false}); }

  constexpr int kMessages = 2000;
  auto config = config_for(broker.address(), "producer");
  config.interval = 1s;
  config.buffer_size = 20;
  std::atomic<int> disconnects{0};
  ClientCallbacks callbacks;
  callbacks.on_disconnected = [&](const std::string&) { ++disconnects; };
  Client client(config);
  client.start(callbacks);
  ASSERT_TRUE(client.wait_connected(5s));

  std::atomic<int> acked{0};
  std::atomic<int> failed{0};
  std::thread producer([&] {
    for (int i = 0; i < kMessages; ++i) {
      while (client.outstanding() >= 20) std::this_thread::sleep_for(1ms);
      client.async_publish(message("data", std::to_string(i), 1), [&](error_code ec) {
        ec ? ++failed : ++acked;
      });
      if (i % 50 == 0) std::this_thread::sleep_for(5ms);  // keep the stream going for a while
    }
  });
  while (acked < kMessages / 4) std::this_thread::sleep_for(1ms);
  broker.restart();  // SIGTERM: mosquitto saves its queue; the client sees the connection drop
  int acked_at_restart = acked;
  producer.join();
  ASSERT_TRUE(client.wait_idle(30s)) << client.outstanding() << " messages never acknowledged";
  EXPECT_LT(acked_at_restart, kMessages) << "the restart must happen mid-stream";
  EXPECT_GE(disconnects.load(), 1);
  EXPECT_EQ(acked.load(), kMessages);
  EXPECT_EQ(failed.load(), 0);

  MosquittoSubscriber verifier(broker.port(), {.topic = "data", .qos = 1, .client_id = "verifier",
                                               .clean_session = false});
  auto received = verifier.wait_for(kMessages, 20s);
  std::set<int> distinct;
  for (const auto& payload : received) distinct.insert(std::stoi(payload));
  EXPECT_EQ(distinct.size(), static_cast<std::size_t>(kMessages))
      << "received " << received.size() << " messages, " << distinct.size() << " distinct";
}

TEST_F(MqttClientTest, QueuesWhileDisconnectedAndDeliversAfterConnecting) {
  auto port = baetyl::testing::free_port();
  auto config = config_for("tcp://127.0.0.1:" + std::to_string(port), "late");
  config.interval = 1s;
  Client client(config);
  client.start();
  auto queued = message("late/q1", "queued", 1);
  queued.retain = true;  // so a subscriber arriving after the delivery still sees it
  auto q1 = publish_async(client, queued);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(q1.wait_for(0s), std::future_status::timeout);
  EXPECT_EQ(client.outstanding(), 1u);

  MosquittoBroker broker(MosquittoOptions{.port = port});  // the broker appears later
  ASSERT_EQ(q1.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(q1.get());
  MosquittoSubscriber reader(port, {.topic = "late/#", .qos = 1});
  EXPECT_EQ(reader.wait_for(1), std::vector<std::string>{"queued"});
}

TEST_F(MqttClientTest, ReconnectBackoffDoublesUpToInterval) {
  RefusingServer server;
  auto config = config_for("tcp://127.0.0.1:" + std::to_string(server.port()), "backoff");
  config.interval = 2s;
  Client client(config);
  client.start();
  std::this_thread::sleep_for(6200ms);
  client.stop();
  auto accepted = server.accepted();
  // Attempts at 0, +0.5 s, +1 s, +2 s, +2 s (capped by interval)
  ASSERT_GE(accepted.size(), 5u);
  std::vector<double> gaps;
  for (std::size_t i = 1; i < accepted.size(); ++i) {
    gaps.push_back(std::chrono::duration<double>(accepted[i] - accepted[i - 1]).count());
  }
  EXPECT_NEAR(gaps[0], 0.5, 0.25);
  EXPECT_NEAR(gaps[1], 1.0, 0.25);
  EXPECT_NEAR(gaps[2], 2.0, 0.25);
  EXPECT_NEAR(gaps[3], 2.0, 0.25);
}

TEST_F(MqttClientTest, KeepalivePingsHoldAnIdleConnection) {
  MosquittoBroker broker;
  auto config = config_for(broker.address(), "idle");
  config.keepalive = 1s;
  std::atomic<int> disconnects{0};
  ClientCallbacks callbacks;
  callbacks.on_disconnected = [&](const std::string&) { ++disconnects; };
  Client client(config);
  client.start(callbacks);
  ASSERT_TRUE(client.wait_connected(5s));
  std::this_thread::sleep_for(3500ms);  // the broker drops clients silent for 1.5 x keepalive
  EXPECT_TRUE(client.connected());
  EXPECT_EQ(disconnects.load(), 0);
  EXPECT_NE(broker.log().find("PINGREQ from idle"), std::string::npos);
}

TEST_F(MqttClientTest, DetectsAFrozenBrokerByMissingPingResponse) {
  MosquittoBroker broker;
  auto config = config_for(broker.address(), "frozen");
  config.keepalive = 1s;
  config.timeout = 1s;
  std::promise<std::string> reason;
  ClientCallbacks callbacks;
  std::once_flag once;
  callbacks.on_disconnected = [&](const std::string& why) {
    std::call_once(once, [&] { reason.set_value(why); });
  };
  Client client(config);
  client.start(callbacks);
  ASSERT_TRUE(client.wait_connected(5s));
  ASSERT_EQ(::kill(broker.pid(), SIGSTOP), 0);
  auto future = reason.get_future();
  bool detected = future.wait_for(4s) == std::future_status::ready;
  ::kill(broker.pid(), SIGCONT);
  ASSERT_TRUE(detected);
  EXPECT_NE(future.get().find("no PINGRESP"), std::string::npos);
}

TEST_F(MqttClientTest, TlsWithClientCertificate) {
  baetyl::testing::TempDir dir;
  auto pki = baetyl::testing::make_test_pki(dir.path() / "pki");
  MosquittoBroker broker(MosquittoOptions{.tls_ca = pki.ca.string(),
                                          .tls_cert = pki.server_cert.string(),
                                          .tls_key = pki.server_key.string(),
                                          .require_certificate = true});
  auto address = "ssl://127.0.0.1:" + std::to_string(broker.port());

  auto config = config_for(address, "tls-ok");
  config.ca = pki.ca.string();
  config.cert = pki.client_cert.string();
  config.key = pki.client_key.string();
  {
    Client client(config);
    client.start();
    ASSERT_TRUE(client.wait_connected(5s));
    auto done = publish_async(client, message("secure", "x", 1));
    ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
    EXPECT_FALSE(done.get());
  }
  auto no_cert = config_for(address, "tls-no-cert");
  no_cert.ca = pki.ca.string();
  EXPECT_FALSE(connects_within(no_cert, 1500ms)) << "the broker requires a client certificate";
  auto wrong_ca = config;
  wrong_ca.client_id = "tls-wrong-ca";
  wrong_ca.ca = pki.other_ca.string();
  EXPECT_FALSE(connects_within(wrong_ca, 1500ms)) << "the server certificate must be verified";
  auto insecure = config;
  insecure.client_id = "tls-insecure";
  insecure.ca = pki.other_ca.string();
  insecure.insecure_skip_verify = true;
  EXPECT_TRUE(connects_within(insecure, 5s));
}

// Debian's mosquitto grants every subscription and applies its ACL on delivery, so it never
// answers 0x80. This peer does: it accepts one client, grants the first filter of a SUBSCRIBE and
// refuses the rest.
class RefusingSubscriptionsBroker {
 public:
  RefusingSubscriptionsBroker() {
    thread_ = std::thread([this] {
      int fd = ::accept(server_.fd(), nullptr, nullptr);
      if (fd < 0) return;
      std::string buffer;
      char chunk[4096];
      for (;;) {
        auto result = baetyl::mqtt::decode(buffer);
        if (result.status == baetyl::mqtt::DecodeStatus::Ok) {
          buffer.erase(0, result.consumed);
          std::string reply;
          if (std::holds_alternative<baetyl::mqtt::Connect>(result.packet)) {
            reply = baetyl::mqtt::encode(baetyl::mqtt::Connack{});
          } else if (auto* sub = std::get_if<baetyl::mqtt::Subscribe>(&result.packet)) {
            baetyl::mqtt::Suback suback{sub->packet_id, {}};
            for (std::size_t i = 0; i < sub->subscriptions.size(); ++i) {
              suback.return_codes.push_back(i == 0 ? 1 : baetyl::mqtt::kSubackFailure);
            }
            reply = baetyl::mqtt::encode(suback);
          } else if (std::holds_alternative<baetyl::mqtt::Pingreq>(result.packet)) {
            reply = baetyl::mqtt::encode(baetyl::mqtt::Pingresp{});
          }
          if (!reply.empty() && ::write(fd, reply.data(), reply.size()) < 0) break;
          continue;
        }
        if (result.status == baetyl::mqtt::DecodeStatus::Error) break;
        ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n <= 0) break;
        buffer.append(chunk, static_cast<std::size_t>(n));
      }
      ::close(fd);
    });
  }
  ~RefusingSubscriptionsBroker() {
    server_.close();
    thread_.join();
  }
  std::uint16_t port() const { return server_.port(); }

 private:
  baetyl::testing::LoopbackListener server_;
  std::thread thread_;
};

TEST_F(MqttClientTest, ValidateSubsStopsTheClientWhenASubscriptionIsRefused) {
  RefusingSubscriptionsBroker broker;
  auto config = config_for("tcp://127.0.0.1:" + std::to_string(broker.port()), "validator");
  config.validate_subs = true;
  config.subscriptions = {{"allowed/x", 1}, {"forbidden", 1}};
  std::promise<std::string> error;
  std::promise<void> disconnected;
  ClientCallbacks callbacks;
  callbacks.on_error = [&](const std::string& e) { error.set_value(e); };
  callbacks.on_disconnected = [&](const std::string&) { disconnected.set_value(); };
  Client client(config);
  client.start(callbacks);
  auto future = error.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(future.get(), "broker refused subscription to forbidden (validatesubs is on)");
  EXPECT_EQ(disconnected.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(client.connected());
  // A client that stopped itself refuses new messages instead of queueing them forever.
  EXPECT_THROW(client.publish("t", "x", 1), std::runtime_error);
  auto aborted = publish_async(client, message("t", "y", 1));
  ASSERT_EQ(aborted.wait_for(1s), std::future_status::ready);
  EXPECT_EQ(aborted.get(), boost::asio::error::operation_aborted);
}

TEST_F(MqttClientTest, RefusedSubscriptionOnlyWarnsWithoutValidateSubs) {
  RefusingSubscriptionsBroker broker;
  auto config = config_for("tcp://127.0.0.1:" + std::to_string(broker.port()), "lenient");
  config.subscriptions = {{"allowed/x", 1}, {"forbidden", 1}};
  std::atomic<bool> errored{false};
  ClientCallbacks callbacks;
  callbacks.on_error = [&](const std::string&) { errored = true; };
  Client client(config);
  client.start(callbacks);
  ASSERT_TRUE(client.wait_connected(5s));
  std::promise<std::vector<std::uint8_t>> granted;
  client.subscribe({{"more", 0}, {"denied", 0}},
                   [&](error_code, std::vector<std::uint8_t> codes) { granted.set_value(codes); });
  EXPECT_EQ(granted.get_future().get(), (std::vector<std::uint8_t>{1, 0x80}));
  EXPECT_FALSE(errored.load());
  EXPECT_TRUE(client.connected());
}

TEST_F(MqttClientTest, RejectsInvalidMessagesAndAddresses) {
  Client client(config_for("tcp://127.0.0.1:1", "x"));
  EXPECT_THROW(client.async_publish(message("bad/+", "x", 0)), std::invalid_argument);
  EXPECT_THROW(client.async_publish(message("", "x", 0)), std::invalid_argument);
  EXPECT_THROW(client.async_publish(message("ok", "x", 2)), std::invalid_argument);
  Client bad(config_for("http://127.0.0.1:1883", "x"));
  EXPECT_THROW(bad.start(), std::invalid_argument);
}

TEST_F(MqttClientTest, PersistentSessionNeedsAClientId) {
  auto config = config_for("tcp://127.0.0.1:1883", "");
  config.clean_session = false;
  Client client(config);
  EXPECT_THROW(client.start(), std::invalid_argument);
}

TEST_F(MqttClientTest, StopAbortsPendingMessagesPromptly) {
  auto config = config_for("tcp://127.0.0.1:" + std::to_string(baetyl::testing::free_port()), "s");
  Client client(config);
  client.start();
  auto pending = publish_async(client, message("t", "never", 1));
  auto begin = std::chrono::steady_clock::now();
  client.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 1s);
  ASSERT_EQ(pending.wait_for(1s), std::future_status::ready);
  EXPECT_EQ(pending.get(), boost::asio::error::operation_aborted);
  EXPECT_THROW(client.publish("t", "after stop", 0), std::runtime_error);
}

// ---- receive window (manual acknowledgement with back-pressure) ----

TEST_F(MqttClientTest, ReceiveWindowDeliversAtMostThatManyUnacknowledged) {
  MosquittoBroker broker;
  Inbox inbox;
  auto callbacks = inbox.callbacks(/*manual_ack=*/true);
  callbacks.receive_window = 3;
  Client client(config_for(broker.address(), "windowed"));
  client.start(callbacks);
  ASSERT_TRUE(client.wait_connected(5s));
  ASSERT_FALSE(subscribe(client, {{"w/#", 1}}).empty());

  Client publisher(config_for(broker.address(), "w-pub"));
  publisher.start();
  for (int i = 0; i < 10; ++i) publisher.publish("w/x", std::to_string(i), i % 2);
  ASSERT_TRUE(publisher.wait_idle(5s));

  auto first = inbox.wait_for(3);
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(inbox.snapshot().size(), 3u) << "QoS 0 and 1 alike count until acknowledged";
  client.ack(first[0]);
  inbox.wait_for(4);
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(inbox.snapshot().size(), 4u) << "one acknowledgement makes room for one message";

  std::size_t acked = 1;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (inbox.snapshot().size() < 10 && std::chrono::steady_clock::now() < deadline) {
    auto now = inbox.snapshot();
    for (; acked < now.size(); ++acked) client.ack(now[acked].receipt());
    std::this_thread::sleep_for(10ms);
  }
  std::set<std::string> payloads;
  for (const auto& m : inbox.snapshot()) payloads.insert(m.publish.payload);
  EXPECT_EQ(payloads.size(), 10u);
}

TEST_F(MqttClientTest, AFullReceiveWindowStopsReadingFromTheBroker) {
  ScriptedBroker broker;
  auto config = config_for(broker.address(), "slow-reader");
  config.keepalive = 0s;
  std::mutex mutex;
  std::vector<Message> received;
  std::atomic<bool> draining{false};
  Client client(config);
  ClientCallbacks callbacks;
  callbacks.manual_ack = true;
  callbacks.receive_window = 1;
  callbacks.on_message = [&](const Message& m) {
    {
      std::lock_guard lock(mutex);
      received.push_back(m);
    }
    if (draining) client.ack(m);
  };
  client.start(callbacks);
  broker.accept_client();

  Publish packet = message("flood", std::string(1024, 'x'), 0);
  constexpr std::size_t kLimit = 64u << 20;
  std::size_t written = broker.flood(packet, kLimit, 1500ms);
  EXPECT_LT(written * 1029, kLimit / 2) << "the client read on although its window was full";
  {
    std::lock_guard lock(mutex);
    ASSERT_EQ(received.size(), 1u);
  }
  // Acknowledging lets it read on: everything written arrives, nothing is lost.
  draining = true;
  client.ack(received.front());
  auto deadline = std::chrono::steady_clock::now() + 20s;
  for (;;) {
    {
      std::lock_guard lock(mutex);
      if (received.size() >= written || std::chrono::steady_clock::now() > deadline) break;
    }
    std::this_thread::sleep_for(20ms);
  }
  std::lock_guard lock(mutex);
  EXPECT_EQ(received.size(), written);
}

// A client without keepalive, acknowledging by hand with a receive window of one, connected to
// a broker played by hand.
struct WindowOfOneClient {
  ScriptedBroker broker;
  Inbox inbox;
  Client client;

  explicit WindowOfOneClient(const std::string& client_id) : client(config(client_id)) {
    auto callbacks = inbox.callbacks(/*manual_ack=*/true);
    callbacks.receive_window = 1;
    client.start(callbacks);
    broker.accept_client();
  }
  ClientConfig config(const std::string& client_id) const {
    auto config = config_for(broker.address(), client_id);
    config.keepalive = 0s;
    return config;
  }
};

TEST_F(MqttClientTest, AFullReceiveWindowStillReadsTheClientsOwnAcknowledgements) {
  WindowOfOneClient setup("both-ways");
  auto& [broker, inbox, client] = setup;
  auto done = publish_async(client, message("out", "mine", 1));
  auto outgoing = broker.next();
  ASSERT_TRUE(std::holds_alternative<Publish>(outgoing));
  // Its PUBACK comes behind messages the window has no room for.
  for (std::uint16_t id = 1; id <= 5; ++id) {
    Publish in = message("in", std::string("m").append(std::to_string(id)), 1);
    in.packet_id = id;
    broker.send(in);
  }
  std::this_thread::sleep_for(300ms);  // the client has read those and holds them
  broker.send(baetyl::mqtt::Puback{std::get<Publish>(outgoing).packet_id});
  ASSERT_EQ(done.wait_for(3s), std::future_status::ready) << "the PUBACK was never read";
  EXPECT_FALSE(done.get());
  EXPECT_EQ(inbox.snapshot().size(), 1u);
}

TEST_F(MqttClientTest, ARedeliveryOfAnUnacknowledgedMessageIsHandedOnOnce) {
  WindowOfOneClient setup("no-twice");
  auto& [broker, inbox, client] = setup;
  Publish first = message("t", "one", 1);
  first.packet_id = 7;
  Publish second = message("t", "two", 1);
  second.packet_id = 8;
  Publish again = first;
  again.dup = true;
  Publish second_again = second;
  second_again.dup = true;
  // `second` waits for room in the window; the retries come before the first is acknowledged
  // (sent in one write: a retry read only after our PUBACK would be a new message).
  broker.send_together({first, second, again, second_again});
  ASSERT_EQ(inbox.wait_for(1).size(), 1u);
  std::this_thread::sleep_for(300ms);
  client.ack(inbox.snapshot()[0]);
  auto puback = broker.next();
  ASSERT_TRUE(std::holds_alternative<baetyl::mqtt::Puback>(puback));
  EXPECT_EQ(std::get<baetyl::mqtt::Puback>(puback).packet_id, 7);
  ASSERT_EQ(inbox.wait_for(2).size(), 2u);
  std::this_thread::sleep_for(300ms);
  auto received = inbox.snapshot();
  ASSERT_EQ(received.size(), 2u) << "each message once";
  EXPECT_EQ(received[1].publish.payload, "two");
  // After our PUBACK the same packet id is a new message.
  client.ack(received[1]);
  ASSERT_TRUE(std::holds_alternative<baetyl::mqtt::Puback>(broker.next()));
  Publish reused = message("t", "three", 1);
  reused.packet_id = 7;
  broker.send(reused);
  auto all = inbox.wait_for(3);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2].publish.payload, "three");
}

TEST_F(MqttClientTest, AFullReceiveWindowKeepsTheConnectionAlive) {
  MosquittoBroker broker;
  auto config = config_for(broker.address(), "held-back");
  config.keepalive = 1s;
  config.timeout = 1s;
  std::atomic<int> disconnects{0};
  Inbox inbox;
  auto callbacks = inbox.callbacks(/*manual_ack=*/true);
  callbacks.receive_window = 1;
  callbacks.on_disconnected = [&](const std::string&) { ++disconnects; };
  Client client(config);
  client.start(callbacks);
  ASSERT_TRUE(client.wait_connected(5s));
  ASSERT_FALSE(subscribe(client, {{"k", 1}}).empty());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "k", std::to_string(i), 1), 0);
  }
  auto first = inbox.wait_for(1);
  // Several keepalive periods with a message waiting for room (and PINGRESPs left unread).
  std::this_thread::sleep_for(3500ms);
  EXPECT_EQ(disconnects.load(), 0);
  EXPECT_TRUE(client.connected());
  client.ack(first[0]);
  auto second = inbox.wait_for(2);
  ASSERT_EQ(second.size(), 2u);
  client.ack(second[1]);
  EXPECT_EQ(inbox.wait_for(3).size(), 3u);
}

TEST_F(MqttClientTest, ReportsEveryFailedConnectionAttempt) {
  MosquittoBroker broker(MosquittoOptions{.username = "edge", .password = "s3cret"});
  auto config = config_for(broker.address(), "refused");
  config.username = "edge";
  config.password = "wrong";
  std::mutex mutex;
  std::vector<std::string> errors;
  ClientCallbacks callbacks;
  callbacks.on_connect_error = [&](const std::string& e) {
    std::lock_guard lock(mutex);
    errors.push_back(e);
  };
  Client client(config);
  client.start(callbacks);
  std::this_thread::sleep_for(1200ms);  // attempts at 0 and +0.5 s
  client.stop();
  std::lock_guard lock(mutex);
  ASSERT_GE(errors.size(), 2u);
  EXPECT_NE(errors[0].find("connection refused"), std::string::npos) << errors[0];
}

// ---- clients sharing a thread ----

TEST_F(MqttClientTest, ClientsOnASharedThreadHandMessagesOnWithoutSwitchingThreads) {
  MosquittoBroker broker;
  auto thread = std::make_shared<baetyl::mqtt::IoThread>();
  auto in_config = config_for(broker.address(), "shared-in");
  Client out(config_for(broker.address(), "shared-out"), nullptr, thread);
  Client in(in_config, nullptr, thread);
  MosquittoSubscriber sub(broker.port(), SubscriberOptions{.topic = "forwarded/#", .qos = 1});

  std::mutex mutex;
  std::set<std::thread::id> threads;
  std::atomic<int> acknowledged{0};
  auto note_thread = [&] {
    std::lock_guard lock(mutex);
    threads.insert(std::this_thread::get_id());
  };
  ClientCallbacks callbacks;
  callbacks.manual_ack = true;
  callbacks.receive_window = 2;
  callbacks.on_message = [&](const Message& m) {
    note_thread();
    out.async_publish(message("forwarded/" + m.publish.topic, m.publish.payload, 1),
                      [&, receipt = m.receipt()](error_code ec) {
                        note_thread();
                        if (!ec) {
                          in.ack(receipt);
                          ++acknowledged;
                        }
                      });
  };
  out.start();
  in.start(callbacks);
  ASSERT_TRUE(in.wait_connected(5s));
  ASSERT_FALSE(subscribe(in, {{"source", 1}}).empty());
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(baetyl::testing::mosquitto_pub(broker.port(), "source", std::to_string(i), 1), 0);
  }
  EXPECT_EQ(sub.wait_for(20).size(), 20u);
  EXPECT_TRUE(eventually_equal(acknowledged, 20));
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(threads.size(), 1u) << "every callback of both clients on the shared thread";
  }
  in.stop();
  out.stop();
  // A stopped client on a shared thread refuses messages at once, as one with its own thread.
  auto late = publish_async(out, message("t", "late", 1));
  ASSERT_EQ(late.wait_for(1s), std::future_status::ready);
  EXPECT_EQ(late.get(), boost::asio::error::operation_aborted);
}

TEST_F(MqttClientTest, AClientOnASharedThreadCanBeStoppedFromItsCallback) {
  MosquittoBroker broker;
  auto thread = std::make_shared<baetyl::mqtt::IoThread>();
  auto config = config_for(broker.address(), "stops-itself");
  std::promise<void> stopped;
  auto client = std::make_unique<Client>(config, nullptr, thread);
  ClientCallbacks callbacks;
  callbacks.on_connected = [&](bool) { client->stop(); };
  callbacks.on_disconnected = [&](const std::string&) { stopped.set_value(); };
  client->start(callbacks);
  EXPECT_EQ(stopped.get_future().wait_for(5s), std::future_status::ready);
  client.reset();  // the destructor waits for the stop to finish
}

// ---- calls on the client's own thread ----

// async_publish() on the client's thread queues the message directly; one handed over from
// another thread before it still goes out first.
TEST_F(MqttClientTest, PublishesOnItsOwnThreadKeepTheOrderOfThoseFromOtherThreads) {
  MosquittoBroker broker;
  auto thread = std::make_shared<baetyl::mqtt::IoThread>();
  Client client(config_for(broker.address(), "own-thread-order"), nullptr, thread);
  MosquittoSubscriber sub(broker.port(), SubscriberOptions{.topic = "order", .qos = 1});
  client.start();
  ASSERT_TRUE(client.wait_connected(5s));
  constexpr int kRounds = 300;
  auto tagged = [](char tag, int i) {
    std::string payload(1, tag);
    payload += std::to_string(i);
    return payload;
  };
  std::atomic<int> on_own_thread{0};
  for (int i = 0; i < kRounds; ++i) {
    client.async_publish(message("order", tagged('a', i), 1));
    boost::asio::post(thread->context(), [&, i] {
      if (thread->running_here()) ++on_own_thread;
      client.async_publish(message("order", tagged('b', i), 1));
    });
  }
  auto got = sub.wait_for(2 * kRounds);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(2 * kRounds));
  EXPECT_EQ(on_own_thread.load(), kRounds);
  int next_a = 0, next_b = 0;
  for (const auto& payload : got) {
    const int n = std::stoi(payload.substr(1));
    if (payload[0] == 'a') {
      EXPECT_EQ(n, next_a++) << "messages from the other thread in order";
    } else {
      EXPECT_EQ(n, next_b++) << "messages from the client's thread in order";
      EXPECT_LT(n, next_a) << "b" << n << " was published after a" << n << " was handed over";
    }
  }
  EXPECT_TRUE(client.wait_idle(5s));
}

// ack() from inside on_message applies at once; a message the full receive window held back is
// delivered after on_message returns, never from inside it, and every acknowledgement reaches the
// broker (nothing comes again on the next connection).
TEST_F(MqttClientTest, AcknowledgementsFromOnMessageFreeTheWindowWithoutReenteringIt) {
  MosquittoBroker broker;
  auto config = config_for(broker.address(), "own-thread-ack");
  config.clean_session = false;
  config.subscriptions = {{"acked", 1}};
  constexpr int kMessages = 100;
  {
    // Subscribe once, so that the broker keeps what is published before the client reads it.
    Client client(config);
    client.start();
    ASSERT_TRUE(client.wait_connected(5s));
    std::this_thread::sleep_for(200ms);
    client.stop();
  }
  Client publisher(config_for(broker.address(), "own-thread-ack-pub"));
  publisher.start();
  for (int i = 0; i < kMessages; ++i) publisher.publish("acked", std::to_string(i), 1);
  ASSERT_TRUE(publisher.wait_idle(5s));
  {
    // Receive window 2: messages 4k and 4k+1 are acknowledged inside on_message of 4k+1 (later
    // ones wait in the window meanwhile); 4k+2 and 4k+3 by a handler posted to the client's thread
    // from on_message of 4k+3, so that messages are held back until it runs.
    auto thread = std::make_shared<baetyl::mqtt::IoThread>();
    std::atomic<int> depth{0}, reentered{0}, received{0}, out_of_order{0};
    std::vector<baetyl::mqtt::Receipt> receipts;  // the client's thread only
    std::unique_ptr<Client> client;
    ClientCallbacks callbacks;
    callbacks.manual_ack = true;
    callbacks.receive_window = 2;
    callbacks.on_message = [&](const Message& m) {
      if (++depth > 1) ++reentered;
      const int k = received++;
      if (m.publish.payload != std::to_string(k)) ++out_of_order;
      receipts.push_back(m.receipt());
      if (k % 4 == 1) {
        for (const auto& receipt : receipts) client->ack(receipt);
        receipts.clear();
      } else if (k % 4 == 3) {
        boost::asio::post(thread->context(), [&, pair = std::move(receipts)] {
          for (const auto& receipt : pair) client->ack(receipt);
        });
        receipts.clear();
      }
      --depth;
    };
    client = std::make_unique<Client>(config, nullptr, thread);
    client->start(callbacks);
    EXPECT_TRUE(eventually_equal(received, kMessages));
    EXPECT_EQ(reentered.load(), 0) << "on_message ran inside on_message";
    EXPECT_EQ(out_of_order.load(), 0);
    std::this_thread::sleep_for(300ms);  // let the last PUBACKs reach the broker
    client->stop();
  }
  Inbox inbox;
  Client again(config);
  again.start(inbox.callbacks(/*manual_ack=*/true));
  ASSERT_TRUE(again.wait_connected(5s));
  std::this_thread::sleep_for(700ms);
  EXPECT_TRUE(inbox.snapshot().empty()) << "every message was acknowledged";
}

// A broker that writes with Nagle's algorithm (the scripted one, as mosquitto, does not set
// TCP_NODELAY) sends the second of two PUBACKs written one after the other only once the client's
// system acknowledged the TCP segment of the first. The client, awaiting that PUBACK with nothing
// to write, has the acknowledgement sent after 10 ms, not after the usual delayed ACK (40 ms).
TEST_F(MqttClientTest, ASecondPubackHeldBackByNagleComesWithinAboutTenMilliseconds) {
  ScriptedBroker broker;
  auto config = config_for(broker.address(), "nagle-peer");
  config.buffer_size = 2;
  Client client(config);
  client.start();
  broker.accept_client();
  ASSERT_TRUE(client.wait_connected(5s));
  using Clock = std::chrono::steady_clock;
  std::vector<double> gaps_ms;
  for (int round = 0; round < 20; ++round) {
    auto first = std::make_shared<std::promise<Clock::time_point>>();
    auto second = std::make_shared<std::promise<Clock::time_point>>();
    auto first_done = first->get_future(), second_done = second->get_future();
    client.async_publish(message("nagle", "1", 1), [first](error_code) { first->set_value(Clock::now()); });
    client.async_publish(message("nagle", "2", 1), [second](error_code) { second->set_value(Clock::now()); });
    std::vector<std::uint16_t> ids;
    while (ids.size() < 2) {
      auto packet = broker.next();
      if (auto* publish = std::get_if<Publish>(&packet)) ids.push_back(publish->packet_id);
    }
    broker.send(baetyl::mqtt::Puback{ids[0]});
    broker.send(baetyl::mqtt::Puback{ids[1]});
    ASSERT_EQ(first_done.wait_for(5s), std::future_status::ready);
    ASSERT_EQ(second_done.wait_for(5s), std::future_status::ready);
    gaps_ms.push_back(
        std::chrono::duration<double, std::milli>(second_done.get() - first_done.get()).count());
  }
  // The first rounds may have every segment acknowledged at once (the kernel's quick-ACK start).
  std::vector<double> later(gaps_ms.begin() + 10, gaps_ms.end());
  std::sort(later.begin(), later.end());
  const double median = later[later.size() / 2];
  EXPECT_LT(median, 25.0) << "the second PUBACK waited for a delayed ACK; gaps (ms) from round 10: "
                          << ::testing::PrintToString(later);
}
