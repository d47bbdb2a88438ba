#pragma once
// Helpers for the end-to-end tests: the real baetyl-hub binary in a temporary service directory,
// a blocking MQTT client over a plain socket built on the SDK codec (for exact packets,
// malformed bytes and acknowledgements held back on purpose), and the fixture of the tests
// against one hub (HubTest).
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "baetyl/mqtt/codec.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"

namespace baetyl::hub::testing {

using namespace std::chrono_literals;

// principals `test`/`hahaha` (everything but pub forbidden/#, sub secret/#) and `limited`/`pw`
// (pub limited/#, sub limited/+); the route t -> t/topic of the docs.
std::string base_config(std::uint16_t port, const std::string& extra = "");

// A hub on 127.0.0.1:`port` storing in `storage_dir`, where user test/hahaha may publish and
// subscribe to everything.
std::string open_config(std::uint16_t port, const std::string& storage_dir);

class HubProcess {
 public:
  // Writes `config` as etc/baetyl/service.yml and starts the hub; waits until `port` accepts.
  HubProcess(std::string config, std::uint16_t port);
  ~HubProcess();
  void start();
  // Sends `signal` and waits for the exit; returns the exit code.
  int stop(int signal);
  std::string output() const;
  const baetyl::testing::TempDir& dir() const { return dir_; }
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  // VmRSS of the hub in KB (/proc/PID/status), or -1.
  long rss_kb() const;
  // The last value of `"key":` in the hub's status lines (status.logging), or -1.
  long last_stat(const std::string& key) const;

 private:
  baetyl::testing::TempDir dir_;
  std::uint16_t port_;
  std::unique_ptr<baetyl::testing::Process> process_;
};

class RawClient {
 public:
  explicit RawClient(std::uint16_t port, const std::string& host = "127.0.0.1");
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void send(const mqtt::Packet& packet);
  void send_raw(const std::string& bytes);
  // The next packet, or nullopt when none arrives in time or the peer closed.
  std::optional<mqtt::Packet> receive(std::chrono::milliseconds timeout = 5s);
  // The next packet of type T, failing the test on anything else.
  template <class T>
  T expect(std::chrono::milliseconds timeout = 5s);
  // True when the peer closes the connection within `timeout` (packets before that are skipped).
  bool closed_by_peer(std::chrono::milliseconds timeout = 5s);
  // True when nothing arrives for `quiet`.
  bool silent_for(std::chrono::milliseconds quiet);

  // Sends CONNECT and returns the CONNACK; a CONNECT of protocol level 5 makes this an MQTT 5
  // client (its packets are encoded and decoded as MQTT 5 from then on).
  mqtt::Connack connect(const mqtt::Connect& connect);
  void close();
  mqtt::ProtocolVersion version() const { return version_; }
  // For packets sent with send_raw() and what comes back.
  void set_version(mqtt::ProtocolVersion version) { version_ = version; }

 private:
  mqtt::ProtocolVersion version_ = mqtt::ProtocolVersion::V311;
  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
};

mqtt::Connect make_connect(const std::string& client_id, bool clean = true,
                           const std::string& username = "test",
                           const std::string& password = "hahaha");

// make_connect() for MQTT 5 with a Session Expiry Interval (none when 0).
mqtt::Connect make_connect_v5(const std::string& client_id, bool clean_start = true,
                              std::uint32_t session_expiry = 0,
                              const std::string& username = "test",
                              const std::string& password = "hahaha");

// A PUBLISH packet; the packet ID is left out at QoS 0.
mqtt::Publish publish_packet(std::string topic, std::string payload, std::uint8_t qos,
                             std::uint16_t id = 0, mqtt::Properties properties = {},
                             bool retain = false);

// Every payload in `acked` (acknowledged by the hub) is among the `received` ones.
void expect_none_lost(const std::set<std::string>& acked, const std::set<std::string>& received);

// A program run to its end: its exit code (-1 when it did not end in time) and its output.
struct Run {
  int code = -1;
  std::string output;
};

// Runs `argv` to its end, within `timeout`, with its output in a new file of `dir`.
Run run_to_end(const baetyl::testing::TempDir& dir, const std::vector<std::string>& argv,
               std::chrono::milliseconds timeout);

std::string python_client_path();

// The fixture of the tests against one hub, started for each test on a free port with
// base_config() and the fixture's extra_config().
class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = baetyl::testing::free_port();
    hub_ = std::make_unique<HubProcess>(base_config(port_, extra_config()), port_);
  }
  virtual std::string extra_config() const { return ""; }

  // A client connected as `id` (MQTT 3.1.1, principal test).
  std::unique_ptr<RawClient> connected(const std::string& id, bool clean = true) {
    auto client = std::make_unique<RawClient>(port_);
    auto ack = client->connect(make_connect(id, clean));
    EXPECT_EQ(ack.return_code, mqtt::ConnectReturnCode::Accepted) << id;
    return client;
  }
  // Returns once the hub has handled everything `c` sent before.
  static void round_trip(RawClient& c) {
    c.send(mqtt::Pingreq{});
    c.expect<mqtt::Pingresp>();
  }

  std::uint16_t port_ = 0;
  std::unique_ptr<HubProcess> hub_;
};

}  // namespace baetyl::hub::testing
