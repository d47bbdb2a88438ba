// baetyl-remote-mqtt end to end: the real binary between a real baetyl-hub and real remote
// brokers (Debian's mosquitto, plain and TLS, and a second baetyl-hub), with SDK clients and
// mosquitto_pub as peers. The kill tests stream thousands of QoS 1 messages and check that every
// number arrives at least once.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baetyl/mqtt/codec.h"
#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/tls.h"
#include "bridge_test_support.h"
#include "http_test_server.h"
#include "hub_test_support.h"

namespace baetyl::remote::testing {
namespace {

using baetyl::hub::testing::base_config;
using baetyl::hub::testing::HubProcess;
using baetyl::testing::free_port;
using baetyl::testing::MosquittoBroker;
using baetyl::testing::MosquittoOptions;

std::string tcp(std::uint16_t port) { return "tcp://127.0.0.1:" + std::to_string(port); }

// The bridge's hub: section for a local baetyl-hub on `port` (principal test/hahaha).
std::string hub_section(std::uint16_t port, const std::string& extra = "") {
  return "hub:\n  address: " + tcp(port) +
         "\n  username: test\n  password: hahaha\n  interval: 1s\n" + extra;
}

// The first lines of a remotes: section whose one remote, "cloud", is at `address`; its further
// keys (indented four spaces) follow.
std::string cloud_at(const std::string& address) {
  return "remotes:\n  - name: cloud\n    address: " + address;
}

// A client of the local baetyl-hub, and one of an anonymous mosquitto.
mqtt::ClientConfig hub_client(std::uint16_t port) { return test_client_config(tcp(port)); }
mqtt::ClientConfig anonymous(const std::string& address) {
  return test_client_config(address, "", "", "");
}

constexpr int kStream = 3000;  // messages of the kill tests
constexpr int kRate = 2000;    // per second: the stream lasts 1.5 s

TEST(RemoteMqtt, ForwardsBothWaysBetweenTheHubAndMosquitto) {
  auto hub_port = free_port();
  HubProcess hub(base_config(hub_port), hub_port);
  MosquittoBroker mosquitto;
  BridgeProcess bridge(hub_section(hub_port) + cloud_at(mosquitto.address()) + R"(
    interval: 1s
rules:
  - hub:
      subscriptions:
        - {topic: 'up/#', qos: 1}
        - {topic: 'up0/+', qos: 0}
    remote:
      name: cloud
      subscriptions:
        - {topic: 'down/+/x', qos: 1}
)");
  Collector at_remote(anonymous(mosquitto.address()), {{"#", 1}});
  Collector at_hub(tcp(hub_port), {{"#", 1}});
  ASSERT_TRUE(path_open(hub_client(hub_port), "up/probe", at_remote));
  ASSERT_TRUE(path_open(anonymous(mosquitto.address()), "down/probe/x", at_hub));

  const std::vector<std::string> auth = {"-u", "test", "-P", "hahaha"};
  ASSERT_EQ(baetyl::testing::mosquitto_pub(hub_port, "up/a/b", "one", 1, auth), 0);
  ASSERT_EQ(baetyl::testing::mosquitto_pub(hub_port, "up0/c", "two", 1, auth), 0);
  ASSERT_EQ(baetyl::testing::mosquitto_pub(hub_port, "other", "not bridged", 1, auth), 0);
  ASSERT_EQ(baetyl::testing::mosquitto_pub(mosquitto.port(), "down/y/x", "three", 1), 0);
  ASSERT_EQ(baetyl::testing::mosquitto_pub(mosquitto.port(), "down/y/z", "not bridged", 1), 0);
  ASSERT_TRUE(eventually([&] { return at_remote.has_payload("two"); }));
  ASSERT_TRUE(eventually([&] { return at_hub.has_payload("three"); }));
  std::this_thread::sleep_for(500ms);

  std::map<std::string, std::vector<Received>> remote, local;
  for (const auto& m : at_remote.received()) {
    if (m.payload != "probe") remote[m.topic].push_back(m);
  }
  for (const auto& m : at_hub.received()) {
    if (m.payload != "probe") local[m.topic].push_back(m);
  }
  ASSERT_EQ(remote["up/a/b"].size(), 1u);
  EXPECT_EQ(remote["up/a/b"][0].payload, "one");
  EXPECT_EQ(remote["up/a/b"][0].qos, 1) << "forwarded at the QoS it was received at";
  ASSERT_EQ(remote["up0/c"].size(), 1u);
  EXPECT_EQ(remote["up0/c"][0].qos, 0) << "the rule subscribes to up0/+ at QoS 0";
  EXPECT_EQ(remote.count("other"), 0u);
  ASSERT_EQ(local["down/y/x"].size(), 1u);
  EXPECT_EQ(local["down/y/x"][0].payload, "three");
  EXPECT_EQ(local["down/y/x"][0].qos, 1);
  EXPECT_EQ(local.count("down/y/z"), 0u);
  // Published on mosquitto: seen there once each, not again after a trip through the hub.
  EXPECT_EQ(remote["down/y/x"].size(), 1u);
  EXPECT_EQ(remote["down/y/z"].size(), 1u);
  EXPECT_EQ(bridge.stop(SIGTERM), 0);
}

TEST(RemoteMqtt, ForwardsOverTlsWithClientCertificates) {
  baetyl::testing::TempDir pki_dir;
  auto pki = baetyl::testing::make_test_pki(pki_dir.path());
  MosquittoBroker tls(MosquittoOptions{.tls_ca = pki.ca.string(),
                                       .tls_cert = pki.server_cert.string(),
                                       .tls_key = pki.server_key.string(),
                                       .require_certificate = true});
  auto hub_port = free_port();
  HubProcess hub(base_config(hub_port), hub_port);
  const std::string ssl = "ssl://127.0.0.1:" + std::to_string(tls.port());
  BridgeProcess bridge(hub_section(hub_port) + "remotes:\n  - name: secure\n    address: " + ssl +
                       "\n    ca: " + pki.ca.string() + "\n    cert: " + pki.client_cert.string() +
                       "\n    key: " + pki.client_key.string() + R"(
    interval: 1s
rules:
  - hub: {subscriptions: [{topic: 'tls/up', qos: 1}]}
    remote: {name: secure, subscriptions: [{topic: 'tls/down', qos: 1}]}
)");
  auto tls_client = anonymous(ssl);
  tls_client.ca = pki.ca.string();
  tls_client.cert = pki.client_cert.string();
  tls_client.key = pki.client_key.string();
  Collector at_remote(tls_client, {{"tls/up", 1}});
  Collector at_hub(tcp(hub_port), {{"tls/down", 1}});
  ASSERT_TRUE(path_open(hub_client(hub_port), "tls/up", at_remote));
  ASSERT_TRUE(path_open(tls_client, "tls/down", at_hub));
  publish_all(hub_client(hub_port), "tls/up", {"secret-up"});
  publish_all(tls_client, "tls/down", {"secret-down"});
  EXPECT_TRUE(eventually([&] { return at_remote.has_payload("secret-up"); }));
  EXPECT_TRUE(eventually([&] { return at_hub.has_payload("secret-down"); }));
}

TEST(RemoteMqtt, BridgesTwoHubs) {
  auto local_port = free_port(), remote_port = free_port();
  HubProcess local(base_config(local_port), local_port);
  HubProcess remote(base_config(remote_port), remote_port);
  BridgeProcess bridge(hub_section(local_port) +
                       "remotes:\n  - name: other-hub\n    address: " + tcp(remote_port) + R"(
    username: test
    password: hahaha
    interval: 1s
rules:
  - hub:
      clientid: edge-up
      subscriptions:
        - {topic: 'sensors/+/temp', qos: 1}
        - {topic: 'all/#', qos: 0}
    remote:
      name: other-hub
      clientid: edge-down
      subscriptions:
        - {topic: 'commands/#', qos: 1}
)");
  Collector at_remote(tcp(remote_port), {{"#", 1}});
  Collector at_local(tcp(local_port), {{"#", 1}});
  ASSERT_TRUE(path_open(hub_client(local_port), "sensors/probe/temp", at_remote));
  ASSERT_TRUE(path_open(hub_client(remote_port), "commands/probe", at_local));
  publish_all(hub_client(local_port), "sensors/s1/temp", {"21.5"});
  publish_all(hub_client(local_port), "sensors/s1/humidity", {"not bridged"});
  publish_all(hub_client(local_port), "all/x/y/z", {"qos0"});
  publish_all(hub_client(remote_port), "commands/s1/reset", {"now"});
  ASSERT_TRUE(eventually([&] { return at_remote.has_payload("qos0"); }));
  ASSERT_TRUE(eventually([&] { return at_local.has_payload("now"); }));
  std::this_thread::sleep_for(300ms);
  auto remote_counts = at_remote.payload_counts();
  EXPECT_EQ(remote_counts["21.5"], 1);
  EXPECT_EQ(remote_counts["not bridged"], 0);
  for (const auto& m : at_remote.received()) {
    if (m.payload == "qos0") {
      EXPECT_EQ(m.qos, 0);
    }
    if (m.payload == "21.5") {
      EXPECT_EQ(m.topic, "sensors/s1/temp");
    }
  }
  EXPECT_EQ(at_local.payload_counts()["now"], 1);
  EXPECT_EQ(at_remote.payload_counts()["now"], 1) << "not sent back to the remote hub";
}

// ---- nothing lost when a side or the bridge dies ----

// Streams kStream numbered QoS 1 messages to `topic` through `streamer`, calls `disrupt` once a
// fifth of them reached `verifier`, and checks that every number still arrives.
void stream_across(Streamer& streamer, const std::string& topic, const Collector& verifier,
                   const std::function<void()>& disrupt) {
  streamer.start(topic, 0, kStream, kRate);
  ASSERT_TRUE(eventually([&] { return verifier.ids().size() >= kStream / 5; }));
  disrupt();
  ASSERT_TRUE(streamer.finish());
  EXPECT_TRUE(verifier.wait_for_ids(kStream)) << missing(verifier.ids(), 0, kStream);
}

// Kills `process` (a HubProcess or BridgeProcess) and starts it again 300 ms later.
template <class P>
void kill_and_restart(P& process) {
  process.stop(SIGKILL);
  std::this_thread::sleep_for(300ms);
  process.start();
}

// A local hub, mosquitto as the remote "cloud", a bridge forwarding the hub's stream/# there and
// a verifier subscribed on mosquitto.
struct HubStreamToMosquitto {
  std::uint16_t hub_port = free_port();
  HubProcess hub{base_config(hub_port), hub_port};
  MosquittoBroker mosquitto;
  Collector verifier{anonymous(mosquitto.address()), {{"stream/#", 1}}};
  BridgeProcess bridge{hub_section(hub_port) + cloud_at(mosquitto.address()) + R"(
    interval: 1s
rules:
  - hub: {subscriptions: [{topic: 'stream/#', qos: 1}]}
    remote: {name: cloud}
)"};

  // Once the path is open, streams from the hub to mosquitto around `disrupt`.
  void stream_around(const std::function<void()>& disrupt) {
    ASSERT_TRUE(path_open(hub_client(hub_port), "stream/probe", verifier));
    Streamer streamer(tcp(hub_port), "streamer");
    stream_across(streamer, "stream/n", verifier, disrupt);
  }
};

TEST(RemoteMqtt, LosesNothingWhenTheRemoteIsKilled) {
  auto local_port = free_port(), remote_port = free_port();
  HubProcess local(base_config(local_port), local_port);
  HubProcess remote(base_config(remote_port), remote_port);
  // Persistent: the remote hub keeps (in its store) what arrives while this one reconnects.
  Collector verifier(tcp(remote_port), {{"stream/#", 1}}, "verifier");
  BridgeProcess bridge(hub_section(local_port) +
                       "remotes:\n  - name: far\n    address: " + tcp(remote_port) + R"(
    username: test
    password: hahaha
    interval: 1s
rules:
  - hub: {subscriptions: [{topic: 'stream/#', qos: 1}]}
    remote: {name: far}
)");
  ASSERT_TRUE(path_open(hub_client(local_port), "stream/probe", verifier));
  Streamer streamer(tcp(local_port), "streamer");
  stream_across(streamer, "stream/n", verifier, [&] { kill_and_restart(remote); });
  EXPECT_TRUE(bridge.running());
}

TEST(RemoteMqtt, LosesNothingWhenTheLocalHubIsKilled) {
  HubStreamToMosquitto setup;
  setup.stream_around([&] { kill_and_restart(setup.hub); });
}

TEST(RemoteMqtt, LosesNothingDownstreamWhenTheLocalHubIsKilled) {
  auto hub_port = free_port();
  HubProcess hub(base_config(hub_port), hub_port);
  MosquittoBroker mosquitto;
  Collector verifier(tcp(hub_port), {{"orders/#", 1}}, "hub-verifier");
  BridgeProcess bridge(hub_section(hub_port) + cloud_at(mosquitto.address()) + R"(
    interval: 1s
rules:
  - remote: {name: cloud, subscriptions: [{topic: 'orders/#', qos: 1}]}
)");
  ASSERT_TRUE(path_open(anonymous(mosquitto.address()), "orders/probe", verifier));
  Streamer streamer(mosquitto.address(), "streamer", "", "");
  stream_across(streamer, "orders/n", verifier, [&] { kill_and_restart(hub); });
}

TEST(RemoteMqtt, LosesNothingWhenTheBridgeIsKilled) {
  HubStreamToMosquitto setup;
  setup.stream_around([&] { kill_and_restart(setup.bridge); });
}

TEST(RemoteMqtt, SigtermLetsMessagesInFlightFinishAndLosesNothing) {
  HubStreamToMosquitto setup;
  setup.stream_around([&] {
    auto begin = std::chrono::steady_clock::now();
    EXPECT_EQ(setup.bridge.stop(SIGTERM), 0);
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 3s) << "both sides are up: no waiting";
    EXPECT_EQ(setup.bridge.output().find("in flight; their sources keep them"), std::string::npos);
    setup.bridge.start();
  });
}

// ---- the window ----

// A broker played by hand: accepts one client, grants subscriptions, answers pings, and
// acknowledges PUBLISH packets only once told to. As the bridge's hub, it also sends QoS 1
// messages to the client and counts its PUBACKs.
class FakeRemote {
 public:
  FakeRemote() {
    thread_ = std::thread([this] {
      int fd = ::accept(listener_.fd(), nullptr, nullptr);
      if (fd < 0) return;
      serve(fd);
      ::close(fd);
    });
  }
  ~FakeRemote() {
    stop_ = true;
    listener_.close();
    thread_.join();
  }
  std::uint16_t port() const { return listener_.port(); }
  std::size_t publishes() const {
    std::lock_guard lock(mutex_);
    return publishes_;
  }
  std::set<std::string> payloads() const {
    std::lock_guard lock(mutex_);
    return payloads_;
  }
  void start_acknowledging() { acknowledge_ = true; }
  // Acknowledges the next `n` messages received (oldest first).
  void acknowledge(std::size_t n) {
    std::lock_guard lock(mutex_);
    allowed_ += n;
  }
  // The most messages received and not yet acknowledged at any time.
  std::size_t max_unacknowledged() const {
    std::lock_guard lock(mutex_);
    return max_unacknowledged_;
  }
  bool subscribed() const { return subscribed_; }
  // Sends `payloads` to the client on `topic` at QoS 1 (packet ids from 1).
  void send(const std::string& topic, const std::vector<std::string>& payloads) {
    std::lock_guard lock(mutex_);
    for (const auto& payload : payloads) {
      mqtt::Publish publish;
      publish.topic = topic;
      publish.payload = payload;
      publish.qos = 1;
      publish.packet_id = ++sent_;
      mqtt::encode(publish, outbox_);
    }
  }
  // PUBACKs the client sent for the messages sent to it.
  std::size_t pubacks() const {
    std::lock_guard lock(mutex_);
    return pubacks_;
  }

 private:
  void serve(int fd) {
    std::string buffer;
    std::vector<std::uint16_t> unacknowledged;
    char chunk[16384];
    while (!stop_) {
      for (;;) {
        auto result = mqtt::decode(buffer);
        if (result.status != mqtt::DecodeStatus::Ok) break;
        buffer.erase(0, result.consumed);
        std::string reply;
        if (std::holds_alternative<mqtt::Connect>(result.packet)) {
          reply = mqtt::encode(mqtt::Connack{});
        } else if (auto* sub = std::get_if<mqtt::Subscribe>(&result.packet)) {
          reply = mqtt::encode(mqtt::Suback{
              sub->packet_id, std::vector<std::uint8_t>(sub->subscriptions.size(), 1)});
          subscribed_ = true;
        } else if (std::holds_alternative<mqtt::Pingreq>(result.packet)) {
          reply = mqtt::encode(mqtt::Pingresp{});
        } else if (auto* publish = std::get_if<mqtt::Publish>(&result.packet)) {
          std::lock_guard lock(mutex_);
          ++publishes_;
          payloads_.insert(publish->payload);
          unacknowledged.push_back(publish->packet_id);
          max_unacknowledged_ = std::max(max_unacknowledged_, unacknowledged.size());
        } else if (std::holds_alternative<mqtt::Puback>(result.packet)) {
          std::lock_guard lock(mutex_);
          ++pubacks_;
        }
        if (!reply.empty() && ::write(fd, reply.data(), reply.size()) < 0) return;
      }
      std::string out;
      {
        std::lock_guard lock(mutex_);
        std::size_t n =
            acknowledge_ ? unacknowledged.size() : std::min(allowed_, unacknowledged.size());
        if (!acknowledge_) allowed_ -= n;
        for (std::size_t i = 0; i < n; ++i) mqtt::encode(mqtt::Puback{unacknowledged[i]}, out);
        unacknowledged.erase(unacknowledged.begin(), unacknowledged.begin() + n);
        out += std::exchange(outbox_, {});
      }
      if (!out.empty() && ::write(fd, out.data(), out.size()) < 0) return;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n <= 0) return;
      buffer.append(chunk, static_cast<std::size_t>(n));
    }
  }

  baetyl::testing::LoopbackListener listener_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> acknowledge_{false};
  std::atomic<bool> subscribed_{false};
  mutable std::mutex mutex_;
  std::size_t publishes_ = 0;
  std::set<std::string> payloads_;
  std::size_t allowed_ = 0;
  std::size_t max_unacknowledged_ = 0;
  std::string outbox_;
  std::uint16_t sent_ = 0;
  std::size_t pubacks_ = 0;
};

TEST(RemoteMqtt, LoopsThroughTwoRulesAreCutAndChainsGoOn) {
  auto hub_port = free_port();
  HubProcess hub(base_config(hub_port), hub_port);
  MosquittoBroker a, b;
  // Rules 0 and 1 make a loop through remote a (up in one rule, down in the other); rule 2
  // forwards the hub's a/# on to remote b.
  BridgeProcess bridge(hub_section(hub_port) + "remotes:\n  - {name: a, interval: 1s, address: '" +
                       a.address() + "'}\n  - {name: b, interval: 1s, address: '" + b.address() +
                       R"('}
rules:
  - hub: {clientid: up-a, subscriptions: [{topic: 'a/#', qos: 1}]}
    remote: {name: a, clientid: up-a}
  - hub: {clientid: down-a}
    remote: {name: a, clientid: down-a, subscriptions: [{topic: 'a/#', qos: 1}]}
  - hub: {clientid: up-b, subscriptions: [{topic: 'a/#', qos: 1}]}
    remote: {name: b}
)");
  Collector at_hub(tcp(hub_port), {{"a/#", 1}});
  Collector at_a(anonymous(a.address()), {{"a/#", 1}});
  Collector at_b(anonymous(b.address()), {{"a/#", 1}});
  ASSERT_TRUE(path_open(hub_client(hub_port), "a/probe", at_a));
  ASSERT_TRUE(path_open(hub_client(hub_port), "a/probe", at_b));
  ASSERT_TRUE(path_open(anonymous(a.address()), "a/probe", at_hub));

  publish_all(hub_client(hub_port), "a/hub", {"from-hub"});
  publish_all(anonymous(a.address()), "a/remote", {"from-a"});
  ASSERT_TRUE(eventually([&] {
    return at_b.has_payload("from-hub") && at_b.has_payload("from-a") &&
           at_a.has_payload("from-hub") && at_hub.has_payload("from-a");
  }));
  std::this_thread::sleep_for(1500ms);  // a loop would keep them coming
  for (const Collector* c : {&at_hub, &at_a, &at_b}) {
    auto counts = c->payload_counts();
    EXPECT_EQ(counts["from-hub"], 1);
    EXPECT_EQ(counts["from-a"], 1) << "from a to the hub, and on to b: once each";
  }
}

// The payloads "0" to "n - 1".
std::vector<std::string> numbers(int n) {
  std::vector<std::string> payloads;
  for (int i = 0; i < n; ++i) payloads.push_back(std::to_string(i));
  return payloads;
}

// The last report the bridge made to `master`, or null.
nlohmann::json last_report(const baetyl::testing::HttpTestServer& master) {
  auto requests = master.requests();
  if (requests.empty()) return nullptr;
  return nlohmann::json::parse(requests.back().body, nullptr, false);
}

std::map<std::string, std::string> reporting_to(const baetyl::testing::HttpTestServer& master) {
  return {{"BAETYL_SERVICE_NAME", "remote"},
          {"BAETYL_SERVICE_INSTANCE_NAME", "remote"},
          {"BAETYL_SERVICE_TOKEN", "token"},
          {"BAETYL_MASTER_API_ADDRESS", master.tcp_address()}};
}

TEST(RemoteMqtt, BuffersizeBoundsWhatIsInFlightAndTheHubKeepsTheRest) {
  baetyl::testing::HttpTestServer master;
  auto hub_port = free_port();
  // The hub sends what the bridge has not acknowledged again every second, on the same
  // connection: the same messages, not more of them.
  HubProcess hub(base_config(hub_port, "message: {egress: {qos1: {retry: {interval: 1s}}}}\n"),
                 hub_port);
  FakeRemote remote;
  BridgeProcess bridge(
      hub_section(hub_port) + "remotes:\n  - name: slow\n    address: " + tcp(remote.port()) + R"(
    buffersize: 5
    interval: 1s
rules:
  - hub: {subscriptions: [{topic: 'w/#', qos: 1}]}
    remote: {name: slow}
report: {interval: 100ms}
)",
      reporting_to(master));
  ASSERT_TRUE(bridge.wait_for_output("connected to " + tcp(hub_port)));
  ASSERT_TRUE(bridge.wait_for_output("connected to " + tcp(remote.port())));
  std::this_thread::sleep_for(300ms);  // the hub client's SUBSCRIBE
  publish_all(hub_client(hub_port), "w/n", numbers(40));
  ASSERT_TRUE(eventually([&] { return remote.publishes() >= 5; }));
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(remote.publishes(), 5u) << "remotes[].buffersize messages in flight at most";
  // ... and the bridge took a batch less one more from the hub (which offers up to 100 at a
  // time), waiting in the bridge.
  ASSERT_TRUE(eventually([&] { return last_report(master).contains("rules"); }));
  auto report = last_report(master);
  EXPECT_EQ(report["rules"][0]["hub_to_remote"]["inflight"], 5) << report.dump();
  remote.start_acknowledging();
  EXPECT_TRUE(eventually([&] { return remote.payloads().size() >= 40; }))
      << remote.payloads().size() << " of 40";
  std::this_thread::sleep_for(500ms);
  // The hub's retries while the window was full are not forwarded: one copy each, and a second
  // at most for a retry that crossed the bridge's PUBACK on the wire (a new message to MQTT; on a
  // loaded machine most of the 35 held back can cross once). Amplification would pass 80.
  EXPECT_LE(remote.publishes(), 80u);
}

// The window refilled at every acknowledgement of the target, the acknowledgements at the source
// in batches of half the window, and never more than buffersize messages in flight; the hub and the
// remote are both played by hand.
TEST(RemoteMqtt, AcknowledgesAtTheSourceInBatchesAndRefillsTheWindowAtEveryAcknowledgement) {
  FakeRemote hub;
  FakeRemote remote;
  BridgeProcess bridge(hub_section(hub.port()) +
                       "remotes:\n  - name: slow\n    address: " + tcp(remote.port()) + R"(
    buffersize: 10
    interval: 1s
rules:
  - hub: {subscriptions: [{topic: 'w/#', qos: 1}]}
    remote: {name: slow}
)");
  ASSERT_TRUE(eventually([&] { return hub.subscribed(); }));
  ASSERT_TRUE(bridge.wait_for_output("connected to " + tcp(remote.port())));
  hub.send("w/n", numbers(40));

  ASSERT_TRUE(eventually([&] { return remote.publishes() >= 10; }));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(remote.publishes(), 10u) << "buffersize messages in flight at most";
  EXPECT_EQ(hub.pubacks(), 0u) << "nothing acknowledged at the source before the target did";

  remote.acknowledge(4);
  EXPECT_TRUE(eventually([&] { return remote.publishes() >= 14; }))
      << "four acknowledged, four more forwarded: " << remote.publishes();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(remote.publishes(), 14u);
  EXPECT_EQ(hub.pubacks(), 0u) << "four acknowledgements, less than a batch of five, are kept";

  remote.acknowledge(1);
  EXPECT_TRUE(eventually([&] { return hub.pubacks() >= 5; })) << hub.pubacks();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(hub.pubacks(), 5u) << "one batch of five";
  EXPECT_EQ(remote.publishes(), 15u);

  remote.start_acknowledging();
  EXPECT_TRUE(eventually([&] { return hub.pubacks() >= 40; }))
      << hub.pubacks() << " of 40 acknowledged at the source";
  EXPECT_EQ(remote.payloads().size(), 40u);
  EXPECT_EQ(remote.publishes(), 40u) << "each once";
  EXPECT_LE(remote.max_unacknowledged(), 10u) << "buffersize messages in flight at most";
}

TEST(RemoteMqtt, WithMqtt5AMessageTheRemoteRefusesIsDroppedAndTheOthersGoOn) {
  auto hub_port = free_port();
  HubProcess hub(base_config(hub_port), hub_port);
  // mosquitto answers an MQTT 5 publish its ACL denies with PUBACK 0x87.
  MosquittoBroker mosquitto(MosquittoOptions{.acl = "topic readwrite up/ok/#\ntopic read #"});
  BridgeProcess bridge(hub_section(hub_port) + cloud_at(mosquitto.address()) + R"(
    protocol: 5
    buffersize: 1
    interval: 1s
rules:
  - hub: {subscriptions: [{topic: 'up/#', qos: 1}]}
    remote: {name: cloud}
)");
  Collector at_remote(anonymous(mosquitto.address()), {{"#", 1}});
  ASSERT_TRUE(path_open(hub_client(hub_port), "up/ok/probe", at_remote));
  const std::vector<std::string> auth = {"-u", "test", "-P", "hahaha"};
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(baetyl::testing::mosquitto_pub(hub_port, "up/no/x", "denied", 1, auth), 0);
  }
  ASSERT_EQ(baetyl::testing::mosquitto_pub(hub_port, "up/ok/x", "after", 1, auth), 0);
  EXPECT_TRUE(eventually([&] { return at_remote.has_payload("after"); }))
      << "a refused message held the window of one";
  EXPECT_FALSE(at_remote.has_payload("denied"));
  EXPECT_TRUE(bridge.wait_for_output("Not authorized (0x87)"));
  EXPECT_EQ(bridge.stop(SIGTERM), 0);
}

// ---- failures ----

// Waits for `bridge` to exit on its own, expects status 1 and returns what it printed.
std::string failure_output(BridgeProcess& bridge) {
  EXPECT_TRUE(eventually([&] { return !bridge.running(); }));
  EXPECT_EQ(bridge.stop(SIGKILL), 1);
  return bridge.output();
}

TEST(RemoteMqtt, BadRemotesAreRetriedAndTheOthersKeepWorking) {
  baetyl::testing::TempDir pki_dir;
  auto pki = baetyl::testing::make_test_pki(pki_dir.path());
  auto hub_port = free_port();
  HubProcess hub(base_config(hub_port), hub_port);
  MosquittoBroker good;
  MosquittoBroker tls(MosquittoOptions{.tls_ca = pki.ca.string(),
                                       .tls_cert = pki.server_cert.string(),
                                       .tls_key = pki.server_key.string()});
  MosquittoBroker locked(MosquittoOptions{.username = "edge", .password = "s3cret"});
  auto absent_port = free_port();
  BridgeProcess bridge(hub_section(hub_port) + "remotes:\n" +
                       "  - {name: good, interval: 1s, address: '" + good.address() + "'}\n" +
                       "  - {name: absent, interval: 1s, address: '" + tcp(absent_port) + "'}\n" +
                       "  - {name: wrong-ca, interval: 1s, address: 'ssl://127.0.0.1:" +
                       std::to_string(tls.port()) + "', ca: '" + pki.other_ca.string() + "'}\n" +
                       "  - {name: wrong-password, interval: 1s, address: '" + locked.address() +
                       "', username: edge, password: wrong}\n" + R"(
rules:
  - {hub: {subscriptions: [{topic: 'good/#', qos: 1}]}, remote: {name: good}}
  - {hub: {subscriptions: [{topic: 'absent/#', qos: 1}]}, remote: {name: absent}}
  - {hub: {subscriptions: [{topic: 'tls/#', qos: 1}]}, remote: {name: wrong-ca}}
  - {hub: {subscriptions: [{topic: 'locked/#', qos: 1}]}, remote: {name: wrong-password}}
)");
  Collector at_good(anonymous(good.address()), {{"good/#", 1}});
  ASSERT_TRUE(path_open(hub_client(hub_port), "good/probe", at_good));
  publish_all(hub_client(hub_port), "absent/a", {"waits"});
  publish_all(hub_client(hub_port), "good/a", {"flows"});
  EXPECT_TRUE(eventually([&] { return at_good.has_payload("flows"); }));

  // Each failure is logged with its reason, and retried: 0.5 s, then 1 s (interval) apart.
  EXPECT_TRUE(bridge.wait_for_output("cannot connect to " + tcp(absent_port), 5s, 3));
  EXPECT_TRUE(bridge.wait_for_output("certificate verify failed", 5s, 2));
  // mosquitto answers a wrong password with CONNACK 5 (not authorized).
  EXPECT_TRUE(bridge.wait_for_output(
      "MQTT client wrong-password: cannot connect to " + locked.address() + ": connection refused",
      5s, 2));
  EXPECT_TRUE(bridge.running());

  // The absent remote appears: the bridge connects and sends what waited for it.
  MosquittoBroker appeared(MosquittoOptions{.port = absent_port});
  EXPECT_TRUE(bridge.wait_for_output("connected to " + tcp(absent_port), 5s));
  Collector at_appeared(anonymous(appeared.address()), {{"absent/#", 1}});
  publish_all(hub_client(hub_port), "absent/b", {"now"});
  EXPECT_TRUE(eventually([&] { return at_appeared.has_payload("now"); }));
  EXPECT_EQ(bridge.stop(SIGTERM), 0);
}

TEST(RemoteMqtt, ALoopConfigurationDoesNotAmplifyMessages) {
  auto hub_port = free_port();
  HubProcess hub(base_config(hub_port), hub_port);
  MosquittoBroker mosquitto;
  // a/# both ways: whatever the bridge forwards to one side, that side hands back to it.
  BridgeProcess bridge(hub_section(hub_port) + cloud_at(mosquitto.address()) + R"(
    interval: 1s
rules:
  - hub: {subscriptions: [{topic: 'a/#', qos: 1}]}
    remote: {name: cloud, subscriptions: [{topic: 'a/#', qos: 1}]}
)");
  Collector at_hub(tcp(hub_port), {{"a/#", 1}});
  Collector at_remote(anonymous(mosquitto.address()), {{"a/#", 1}});
  ASSERT_TRUE(path_open(hub_client(hub_port), "a/probe", at_remote));
  ASSERT_TRUE(path_open(anonymous(mosquitto.address()), "a/probe", at_hub));

  std::vector<std::string> from_hub, from_remote;
  for (int i = 0; i < 100; ++i) {
    from_hub.push_back(std::string("h").append(std::to_string(i)));
    from_remote.push_back(std::string("r").append(std::to_string(i)));
  }
  for (int i = 0; i < 20; ++i) {
    from_hub.push_back("same");  // identical messages are counted, not merged
    from_remote.push_back("dup");
  }
  publish_all(hub_client(hub_port), "a/h", from_hub);
  publish_all(anonymous(mosquitto.address()), "a/r", from_remote);
  auto all_there = [&](const Collector& c) {
    auto counts = c.payload_counts();
    return counts["h99"] == 1 && counts["r99"] == 1 && counts["same"] >= 20 && counts["dup"] >= 20;
  };
  ASSERT_TRUE(eventually([&] { return all_there(at_hub) && all_there(at_remote); }));
  std::this_thread::sleep_for(1500ms);  // a loop would keep them coming
  for (const Collector* c : {&at_hub, &at_remote}) {
    auto counts = c->payload_counts();
    counts.erase("probe");
    EXPECT_EQ(counts.size(), 202u);
    for (const auto& [payload, n] : counts) {
      EXPECT_EQ(n, payload == "same" || payload == "dup" ? 20 : 1) << payload;
    }
  }
}

TEST(RemoteMqtt, ReportsStatsToTheMaster) {
  baetyl::testing::HttpTestServer master;
  auto hub_port = free_port();
  HubProcess hub(base_config(hub_port), hub_port);
  MosquittoBroker mosquitto;
  auto absent_port = free_port();
  BridgeProcess bridge(hub_section(hub_port) +
                           "remotes:\n  - {name: cloud, interval: 1s, address: '" +
                           mosquitto.address() + "'}\n  - {name: absent, interval: 1s, address: '" +
                           tcp(absent_port) + R"('}
rules:
  - hub: {subscriptions: [{topic: 's/up', qos: 1}]}
    remote: {name: cloud, subscriptions: [{topic: 's/down', qos: 1}]}
  - hub: {subscriptions: [{topic: 'nowhere', qos: 1}]}
    remote: {name: absent}
report: {interval: 200ms}
)",
                       reporting_to(master));
  Collector at_remote(anonymous(mosquitto.address()), {{"s/up", 1}});
  Collector at_hub(tcp(hub_port), {{"s/down", 1}});
  ASSERT_TRUE(path_open(hub_client(hub_port), "s/up", at_remote));
  ASSERT_TRUE(path_open(anonymous(mosquitto.address()), "s/down", at_hub));
  publish_all(hub_client(hub_port), "s/up", {"1", "2", "3", "4", "5"});
  publish_all(anonymous(mosquitto.address()), "s/down", {"6", "7", "8"});
  ASSERT_TRUE(at_remote.wait_for_ids(5));
  ASSERT_TRUE(at_hub.wait_for_ids(3));

  nlohmann::json report;
  auto latest_matches = [&] {
    auto requests = master.requests();
    if (requests.empty()) return false;
    EXPECT_EQ(requests.back().method, "PUT");
    EXPECT_EQ(requests.back().target, "/v1/services/remote/instances/remote/report");
    report = nlohmann::json::parse(requests.back().body, nullptr, false);
    if (!report.contains("rules") || report["rules"].size() != 2) return false;
    const auto& rule = report["rules"][0];
    return rule["hub_to_remote"]["forwarded"] == at_remote.count() &&
           rule["remote_to_hub"]["forwarded"] == at_hub.count() &&
           report["rules"][1]["remote_client"]["connect_failures"] >= 1;
  };
  ASSERT_TRUE(eventually(latest_matches, 10s)) << report.dump(2);
  const auto& rule = report["rules"][0];
  EXPECT_EQ(rule["remote"], "cloud");
  EXPECT_EQ(rule["hub_client"]["connected"], true);
  EXPECT_EQ(rule["hub_client"]["clientid"], "cloud");
  EXPECT_EQ(rule["remote_client"]["connected"], true);
  EXPECT_EQ(rule["remote_client"]["reconnects"], 0);
  EXPECT_EQ(rule["hub_to_remote"]["inflight"], 0);
  EXPECT_EQ(rule["hub_to_remote"]["window"], 10);
  const auto& absent = report["rules"][1]["remote_client"];
  EXPECT_EQ(absent["connected"], false);
  EXPECT_NE(absent["last_error"].get<std::string>().find("refused"), std::string::npos)
      << absent.dump();
  EXPECT_EQ(bridge.stop(SIGTERM), 0);
}

TEST(RemoteMqtt, AnInvalidConfigurationExitsNamingFileAndKey) {
  auto port = free_port();
  BridgeProcess bad(hub_section(port) + R"(
remotes: [{name: cloud, address: 'tcp://127.0.0.1:1'}]
rules: [{remote: {name: nope}}]
)");
  auto output = failure_output(bad);
  EXPECT_NE(output.find("etc/baetyl/service.yml: rules[0].remote.name: no remote named "
                        "'nope' in remotes"),
            std::string::npos)
      << output;

  BridgeProcess unreadable(hub_section(port) + R"(
remotes: [{name: cloud, address: 'ssl://127.0.0.1:1', ca: /nonexistent/ca.pem}]
rules: [{remote: {name: cloud}}]
)");
  output = failure_output(unreadable);
  EXPECT_NE(output.find("rules[0]: remote 'cloud' (ssl://127.0.0.1:1)"), std::string::npos)
      << output;
  EXPECT_NE(output.find("/nonexistent/ca.pem"), std::string::npos);
}

TEST(RemoteMqtt, UnknownKeysAreWarnedAbout) {
  auto hub_port = free_port();
  HubProcess hub(base_config(hub_port), hub_port);
  BridgeProcess bridge(hub_section(hub_port) + R"(
remotes: [{name: cloud, address: 'tcp://127.0.0.1:1', qos: 1}]
rules: [{remote: {name: cloud}, forward: both}]
)");
  EXPECT_TRUE(
      bridge.wait_for_output("etc/baetyl/service.yml: unknown key 'rules[0].forward' is ignored"));
  EXPECT_TRUE(
      bridge.wait_for_output("etc/baetyl/service.yml: unknown key 'remotes[0].qos' is ignored"));
  EXPECT_TRUE(bridge.running());
  EXPECT_EQ(bridge.stop(SIGTERM), 0);
}

TEST(RemoteMqtt, ARefusedSubscriptionStopsTheBridgeWithValidatesubs) {
  auto hub_port = free_port();
  HubProcess hub(base_config(hub_port), hub_port);
  MosquittoBroker mosquitto;
  // The hub's principal `test` may not subscribe to secret/#.
  BridgeProcess bridge(hub_section(hub_port, "  validatesubs: true\n") +
                       cloud_at(mosquitto.address()) + R"(
rules:
  - hub: {subscriptions: [{topic: 'secret/#', qos: 1}]}
    remote: {name: cloud}
)");
  auto output = failure_output(bridge);
  EXPECT_NE(output.find("rules[0] hub: broker refused subscription to secret/# "
                        "(validatesubs is on)"),
            std::string::npos)
      << output;
}

}  // namespace
}  // namespace baetyl::remote::testing
