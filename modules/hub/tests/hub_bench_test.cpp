// hub_bench, the client of the hub benchmark (modules/hub/bench/run.sh), in short runs against the
// real baetyl-hub and Debian's mosquitto on free loopback ports: its MQTT 5 clients (--protocol 5)
// in every mode the benchmark uses, the broker's Receive Maximum kept, and failure reason codes
// reported by name.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/process.h"
#include "hub_test_support.h"

using namespace baetyl::hub::testing;
namespace bt = baetyl::testing;

namespace {

// Runs hub_bench with `args` to its end: exit code and output (stdout and stderr).
bt::CommandResult bench(const std::string& args) {
  return bt::run_command(bt::binary_path("hub_bench") + " " + args + " 2>&1");
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class HubBenchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = bt::free_port();
    hub_ = std::make_unique<HubProcess>(base_config(port_, extra_config()), port_);
  }
  virtual std::string extra_config() const { return ""; }

  // The options that reach the hub as principal `test`.
  std::string to_hub() const {
    return "--port " + std::to_string(port_) + " --username test --password hahaha";
  }

  std::uint16_t port_ = 0;
  std::unique_ptr<HubProcess> hub_;
};

TEST_F(HubBenchTest, Mqtt5ThroughputAtQos0AndQos1LosesNothing) {
  auto r = bench(to_hub() + " --protocol 5 --qos 0 --publishers 2 --subscribers 2 --messages 5000");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "received 20000/20000  lost 0.00%")) << r.output;
  EXPECT_TRUE(contains(r.output, "  mqtt 5\n")) << r.output;

  r = bench(to_hub() + " --protocol 5 --qos 1 --messages 5000 --window 100 --broker-pid " +
            std::to_string(hub_->pid()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "received 5000/5000  lost 0.00%")) << r.output;
  EXPECT_TRUE(contains(r.output, "broker cpu")) << r.output;
  // The hub announces a Receive Maximum of 100: the window was kept.
  EXPECT_FALSE(contains(r.output, "window")) << r.output;
  EXPECT_TRUE(contains(r.output, "  mqtt 5\n")) << r.output;
}

TEST_F(HubBenchTest, Mqtt5PersistentSessionsAndASlowConsumer) {
  // Twice: the second run resumes the session the first left (Clean Start 0, never expires).
  for (int run = 0; run < 2; ++run) {
    auto r = bench(to_hub() +
                   " --protocol 5 --qos 1 --messages 1000 --persistent 1 --ack-lag 90 "
                   "--consume-rate 4000");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(contains(r.output, "received 1000/1000  lost 0.00%")) << r.output;
  }
}

TEST_F(HubBenchTest, Mqtt5LatencyIdleAndFlood) {
  auto r = bench(to_hub() + " --protocol 5 --mode latency --qos 1 --rate 500 --seconds 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "received 500/500")) << r.output;
  EXPECT_TRUE(contains(r.output, "puback 500/500")) << r.output;

  const std::string pid = std::to_string(hub_->pid());
  r = bench(to_hub() + " --protocol 5 --mode idle --connections 50 --hold 0.2 --broker-pid " + pid);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "idle connections 50/50")) << r.output;

  r = bench(to_hub() + " --protocol 5 --mode flood --qos 1 --messages 300 --payload 4096 " +
            "--hold 0.2 --broker-pid " + pid);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "published 300 in")) << r.output;
  EXPECT_TRUE(contains(r.output, "  mqtt 5\n")) << r.output;
}

TEST_F(HubBenchTest, FailureReasonCodesAreNamed) {
  auto r = bench("--port " + std::to_string(port_) +
                 " --username test --password wrong --protocol 5 --messages 10");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "connection refused: 0x86 Bad User Name or Password")) << r.output;

  // `limited` may subscribe to limited/+ only.
  r = bench("--port " + std::to_string(port_) +
            " --username limited --password pw --protocol 5 --messages 10");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "subscription to bench/# refused: 0x87 Not authorized"))
      << r.output;

  // ... and publish on limited/# only: the subscriber (as `test`) is served, the publisher's first
  // PUBACK refuses.
  r = bench("--port " + std::to_string(port_) + " --username limited --password pw --sub-port " +
            std::to_string(port_) +
            " --sub-username test --sub-password hahaha --protocol 5 --qos 1 --messages 10");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "PUBACK 0x87 Not authorized for packet id 1")) << r.output;
}

TEST_F(HubBenchTest, BadOptionsAreRefused) {
  auto r = bench(to_hub() + " --protocol 3");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "--protocol must be 4 (MQTT 3.1.1) or 5 (MQTT 5)")) << r.output;
  r = bench(to_hub() + " --protocol 5 --window 100 --receive-maximum 50");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "--receive-maximum must be")) << r.output;
}

class HubBenchSmallReceiveMaximumTest : public HubBenchTest {
 protected:
  std::string extra_config() const override {
    return "message:\n  ingress:\n    qos1:\n      buffer:\n        size: 10\n";
  }
};

// The hub announces Receive Maximum 10 and disconnects (0x93) an MQTT 5 client with more QoS 1
// messages unacknowledged: a window of 50 must be lowered to 10.
TEST_F(HubBenchSmallReceiveMaximumTest, Mqtt5PublisherKeepsTheBrokersReceiveMaximum) {
  auto r = bench(to_hub() + " --protocol 5 --qos 1 --messages 3000 --window 50");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "received 3000/3000  lost 0.00%")) << r.output;
  EXPECT_TRUE(contains(r.output, "  mqtt 5  window 10 (the broker's Receive Maximum)\n"))
      << r.output;

  r = bench(to_hub() + " --protocol 5 --mode latency --qos 1 --rate 2000 --seconds 0.5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "puback 1000/1000")) << r.output;

  // 3.1.1 has no Receive Maximum: the window stays, and the line has no protocol note.
  r = bench(to_hub() + " --qos 1 --messages 3000 --window 50");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "received 3000/3000")) << r.output;
  EXPECT_FALSE(contains(r.output, "mqtt 5")) << r.output;
  EXPECT_FALSE(contains(r.output, "window")) << r.output;
}

// mosquitto 2 in MQTT 5: it announces its max_inflight_messages as Receive Maximum (20 is
// Debian's default, which run.sh's mosquitto keeps).
TEST(HubBenchMosquittoTest, Mqtt5ClientsAgainstMosquitto) {
  bt::MosquittoOptions options;
  options.extra_config = "max_inflight_messages 20\n";
  bt::MosquittoBroker mosquitto(options);
  const std::string port = "--port " + std::to_string(mosquitto.port());
  auto r = bench(port + " --protocol 5 --qos 1 --messages 2000 --window 100");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "received 2000/2000")) << r.output;
  EXPECT_TRUE(contains(r.output, "  mqtt 5  window 20 (the broker's Receive Maximum)\n"))
      << r.output;

  r = bench(port + " --protocol 5 --qos 0 --subscribers 2 --messages 2000");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "received 4000/4000")) << r.output;

  r = bench(port + " --protocol 5 --qos 1 --messages 500 --persistent 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "received 500/500")) << r.output;

  // mosquitto logs each client's protocol: "(p5, c1, ...)" is MQTT 5 with Clean Start.
  EXPECT_TRUE(contains(mosquitto.log(), "as bench-pub-0 (p5, c1")) << mosquitto.log();
  EXPECT_TRUE(contains(mosquitto.log(), "as bench-sub-0 (p5, c0")) << mosquitto.log();
  EXPECT_FALSE(contains(mosquitto.log(), "(p2,")) << mosquitto.log();
}

}  // namespace
