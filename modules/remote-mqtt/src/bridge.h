#pragma once
// The bridge: for every rule, one client on the hub and one on the remote, and a Direction each
// way that forwards what the source's subscriptions deliver to the target.
//
// End-to-end acknowledgement: a message is received with manual acknowledgement and acknowledged
// to its source only when the target acknowledged the forwarded copy (QoS 1), or wrote it (QoS 0).
// A QoS 1 message the bridge holds when it stops, crashes or loses either side stays
// unacknowledged at the source, which sends it again: messages may be duplicated, never lost.
//
// Window: at most the target's buffersize messages are in flight (forwarded, not yet acknowledged
// by the target). The acknowledgements at the source go in batches of half the window: what the
// target acknowledged is kept until that many are, or nothing is left in flight or waiting, and
// then acknowledged at the source together (one write of PUBACKs instead of one per message). So
// that the target is still refilled at every acknowledgement meanwhile, the source client's
// receive window is the window plus a batch; the messages beyond the window wait in the
// direction, in order. With that many messages taken and not yet acknowledged at the source, the
// source client stops reading from its broker (back-pressure): the broker keeps the rest, nothing
// is dropped in between.
//
// (Holding back the refill of the target instead, until half the window is acknowledged, would
// write nothing to a target that sends its first PUBACK and keeps the next ones until the TCP
// acknowledgement of it, as a broker with Nagle's algorithm does: the delayed ACK then stalls
// every window for 40 ms.)
//
// Loops: see echo_filter.h.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <nlohmann/json.hpp>

#include "baetyl/context.h"
#include "baetyl/mqtt/client.h"
#include "config.h"
#include "echo_filter.h"

namespace baetyl::remote {

// What a client's connection went through, for the stats.
class LinkStats {
 public:
  void connected();
  void disconnected(const std::string& reason);
  void connect_failed(const std::string& error);
  void stopping() { stopping_ = true; }
  // connected, reconnects, connect_failures, last_error, last_error_time
  nlohmann::json to_json() const;

 private:
  void record_error(const std::string& error);

  mutable std::mutex mutex_;
  std::atomic<bool> stopping_{false};
  bool connected_ = false;
  std::uint64_t connections_ = 0;
  std::uint64_t failures_ = 0;
  std::string last_error_;
  std::chrono::system_clock::time_point last_error_time_{};
};

// A rule's client on one side.
struct Link {
  Link(std::string side, mqtt::ClientConfig config)
      : side(std::move(side)), config(std::move(config)) {}

  std::string side;  // "hub" or "remote '<name>'"
  mqtt::ClientConfig config;
  std::unique_ptr<mqtt::Client> client;
  EchoFilter echoes;  // copies of forwarded messages that this client's subscriptions will get
  LinkStats stats;

  bool subscribed_to(const std::string& topic) const;
};

// Messages one way through a rule.
class Direction {
 public:
  Direction(std::string name, Link& source, Link& target, std::size_t window,
            std::shared_ptr<spdlog::logger> log);

  // `link`, on the target's side, would receive a forwarded message (and forward it back).
  void watch_echoes(Link& link);
  // The source client's on_message.
  void on_message(const mqtt::Message& message);
  // The target client's on_disconnected: what it acknowledged goes to the source now.
  void target_disconnected() { acknowledge_at_source(); }
  // New messages, and those waiting, stay unacknowledged at the source; those in flight still
  // complete and are acknowledged at the source as they do. Then call acknowledge_at_source() on
  // the clients' thread for those the target acknowledged before.
  void stop() { stopping_ = true; }
  // Acknowledges at the source every message the target has acknowledged (clients' thread).
  void acknowledge_at_source();
  // Nothing in flight, or nothing that can still complete (the target is disconnected).
  bool settled() const;

  const std::string& name() const { return name_; }
  std::size_t window() const { return window_; }
  // Acknowledgements given to the source together.
  std::size_t batch() const { return batch_; }
  // The source client's receive window: the messages taken and not acknowledged at the source.
  std::size_t receive_window() const { return window_ + batch_ - 1; }
  std::uint64_t forwarded() const { return forwarded_.load(); }
  std::int64_t inflight() const { return inflight_.load(); }
  std::uint64_t echoes() const { return echoes_.load(); }
  // forwarded, inflight, window, echoes_dropped, qos0_lost
  nlohmann::json stats() const;

 private:
  struct Waiting {
    mqtt::Publish publish;
    mqtt::Receipt receipt;
  };

  void forward(mqtt::Publish publish, const mqtt::Receipt& receipt);
  void forwarded(const mqtt::Receipt& receipt, error_code ec);
  void forward_waiting();

  const std::string name_;  // "hub_to_remote" or "remote_to_hub"
  Link& source_;
  Link& target_;
  const std::size_t window_;
  const std::size_t batch_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<Link*> watchers_;
  // Clients' thread only: taken while the window was full, in order; acknowledged by the target
  // and not yet at the source.
  std::deque<Waiting> waiting_;
  std::vector<mqtt::Receipt> acknowledged_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> forwarded_{0};
  std::atomic<std::int64_t> inflight_{0};
  std::atomic<std::uint64_t> echoes_{0};
  std::atomic<std::uint64_t> qos0_lost_{0};
};

// One rule: its two clients and the two directions between them.
class RuleBridge {
 public:
  RuleBridge(ResolvedRule rule, std::shared_ptr<spdlog::logger> log);
  ~RuleBridge();
  RuleBridge(const RuleBridge&) = delete;
  RuleBridge& operator=(const RuleBridge&) = delete;

  // Starts both clients. `on_fatal` gets an error that ends the module (validatesubs). Throws
  // std::runtime_error naming the rule for unusable TLS files.
  void start(const std::function<void(const std::string&)>& on_fatal);
  void stop_forwarding();
  bool settled() const { return up_.settled() && down_.settled(); }
  void stop_clients();

  const std::string& remote_name() const { return rule_.remote_name; }
  Link& hub() { return hub_; }
  Link& remote() { return remote_; }
  Direction& up() { return up_; }
  Direction& down() { return down_; }
  nlohmann::json stats() const;

 private:
  mqtt::ClientCallbacks callbacks_for(Link& link, Direction& from_here, Direction& to_here,
                                      const std::function<void(const std::string&)>& on_fatal);
  // Runs `fn` on the clients' thread and waits for it.
  void run_on_thread(const std::function<void()>& fn);

  ResolvedRule rule_;
  std::shared_ptr<spdlog::logger> log_;
  // Both clients run on it: a message goes from one to the other, and its acknowledgement back,
  // without a thread switch.
  std::shared_ptr<mqtt::IoThread> thread_;
  Link hub_;
  Link remote_;
  Direction up_;    // hub -> remote
  Direction down_;  // remote -> hub
};

class Bridge {
 public:
  Bridge(const BridgeConfig& config, std::shared_ptr<spdlog::logger> log);
  ~Bridge();

  void start(const std::function<void(const std::string&)>& on_fatal);
  // Stops taking messages, lets those in flight finish for up to `grace`, stops every client.
  void stop(std::chrono::milliseconds grace);
  // {"rules": [...]} as reported to the master.
  nlohmann::json stats() const;
  std::vector<std::unique_ptr<RuleBridge>>& rules() { return rules_; }

 private:
  std::shared_ptr<spdlog::logger> log_;
  std::vector<std::unique_ptr<RuleBridge>> rules_;
  bool stopped_ = false;
};

// How long a SIGTERM waits for messages in flight before the clients disconnect.
inline constexpr std::chrono::seconds kStopGrace{5};

// The module's body for baetyl::run.
void run_bridge(Context& context);

}  // namespace baetyl::remote
