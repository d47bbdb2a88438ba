#pragma once
// Helpers for the bridge's end-to-end tests: the real baetyl-remote-mqtt binary in a temporary
// service directory, and SDK clients that publish numbered QoS 1 streams and collect what
// arrives.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "baetyl/mqtt/client.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"

namespace baetyl::remote::testing {

using namespace std::chrono_literals;

// baetyl-remote-mqtt with `config` as etc/baetyl/service.yml.
class BridgeProcess {
 public:
  explicit BridgeProcess(std::string config, std::map<std::string, std::string> env = {});
  ~BridgeProcess();
  void start();
  // Sends `signal` and waits for the exit; returns the exit code.
  int stop(int signal, std::chrono::milliseconds timeout = 10s);
  bool running();
  std::string output() const;
  // Waits until the output contains `text` `times` times.
  bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout = 10s,
                       std::size_t times = 1) const;
  const baetyl::testing::TempDir& dir() const { return dir_; }

 private:
  baetyl::testing::TempDir dir_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<baetyl::testing::Process> process_;
};

struct Received {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
};

// A client configuration for tests: clean session unless a client ID is given, reconnecting
// within a second.
mqtt::ClientConfig test_client_config(const std::string& address, const std::string& client_id = "",
                                      const std::string& username = "test",
                                      const std::string& password = "hahaha");

// A subscriber that records every message, persistent when given a client ID.
class Collector {
 public:
  Collector(const std::string& address, std::vector<mqtt::TopicInfo> topics,
            const std::string& client_id = "", const std::string& username = "test",
            const std::string& password = "hahaha")
      : Collector(test_client_config(address, client_id, username, password), std::move(topics)) {}
  Collector(mqtt::ClientConfig config, std::vector<mqtt::TopicInfo> topics);
  ~Collector();

  std::vector<Received> received() const;
  std::size_t count() const;
  // Distinct payloads received that are numbers.
  std::set<int> ids() const;
  // How many times each payload arrived.
  std::map<std::string, int> payload_counts() const;
  bool has_payload(const std::string& payload) const;
  // Waits until at least `n` messages (or `n` distinct numeric payloads) arrived.
  bool wait_for_count(std::size_t n, std::chrono::milliseconds timeout = 20s) const;
  bool wait_for_ids(std::size_t n, std::chrono::milliseconds timeout = 30s) const;
  void stop() { client_->stop(); }

 private:
  std::unique_ptr<mqtt::Client> client_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<Received> received_;
};

// Publishes the numbers [from, to) as payloads to `topic` at QoS 1, about `rate` per second,
// on a thread of its own; keeps what the broker has not acknowledged and sends it again after a
// reconnect (so a broker restart loses nothing the publisher sent).
class Streamer {
 public:
  Streamer(const std::string& address, const std::string& client_id,
           const std::string& username = "test", const std::string& password = "hahaha");
  ~Streamer();
  void start(const std::string& topic, int from, int to, int rate);
  int sent() const { return sent_.load(); }
  // Waits for the stream to be written and every message acknowledged.
  bool finish(std::chrono::milliseconds timeout = 30s);

 private:
  std::unique_ptr<mqtt::Client> client_;
  std::thread thread_;
  std::atomic<int> sent_{0};
  std::atomic<bool> stop_{false};
};

// Publishes `payloads` to `topic` with a client of its own and waits for the acknowledgements.
void publish_all(const mqtt::ClientConfig& config, const std::string& topic,
                 const std::vector<std::string>& payloads, int qos = 1);

// Publishes "probe" to `topic` (through `config`) until `collector` receives one: the bridge has
// connected and subscribed on the way. Tests that count messages leave the probes out.
bool path_open(const mqtt::ClientConfig& config, const std::string& topic,
               const Collector& collector, std::chrono::milliseconds timeout = 20s);

// Polls `condition` every 20 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s);

// The numbers in [from, to) missing from `ids`, for failure messages (at most 20 shown).
std::string missing(const std::set<int>& ids, int from, int to);

}  // namespace baetyl::remote::testing
