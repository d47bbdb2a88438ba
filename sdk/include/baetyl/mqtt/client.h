#pragma once
// An asynchronous MQTT 3.1.1 or MQTT 5 client (`protocol` in ClientConfig) that keeps its
// connection alive on its own.
//
// - Connects over tcp or ssl, with username/password and client certificates.
// - Reconnects after any failure, waiting 500 ms, then doubling up to `interval`.
// - Keeps QoS 1 messages until the broker acknowledges them, and sends the unacknowledged ones
//   again (with DUP) after a reconnect, so nothing published at QoS 1 is lost while the client
//   runs. At most `buffersize` QoS 1 messages are in flight at a time.
// - Subscribes again after every reconnect.
// - With manual acknowledgement and a receive window, delivers at most that many messages not
//   yet acknowledged and then stops reading from the broker (back-pressure), unless it awaits
//   acknowledgements of its own on the same connection.
//
// The client runs on a thread of its own, or on an IoThread it shares with other clients; every
// public method is thread-safe. Callbacks run on that thread, so they must not block: inside them
// use async_publish(), not publish(). async_publish() and ack() called on that thread are applied
// at once rather than posted to it, after whatever other threads handed over before.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/logger.h>

#include "baetyl/asio.h"
#include "baetyl/mqtt/client_config.h"
#include "baetyl/mqtt/packet.h"

namespace baetyl::mqtt {

// MQTT 5: the error a publish completes with when the broker refuses it with a reason code (a
// PUBACK of 0x80 or above, e.g. 0x87 Not authorized), or when the client does not send it because
// it breaks a limit of the broker's CONNACK (0x95 Packet too large, 0x9B QoS not supported, 0x9A
// Retain not supported). ec.value() is the reason code, ec.message() its name and code.
const boost::system::error_category& reason_category();
error_code make_error_code(ReasonCode code);

// What ack() needs of a received message: small enough to keep instead of the whole message.
struct Receipt {
  std::uint64_t session = 0;  // the connection that delivered it
  std::uint16_t packet_id = 0;
  std::uint8_t qos = 0;
};

// A message received from the broker. With MQTT 5, publish.properties holds its properties (user
// properties, content type, the remaining message expiry interval, ...).
struct Message {
  Publish publish;
  std::uint64_t session = 0;  // the connection that delivered it; ack() uses it

  Receipt receipt() const { return {session, publish.packet_id, publish.qos}; }
};

using PublishHandler = std::function<void(error_code)>;
using SubscribeHandler = std::function<void(error_code, std::vector<std::uint8_t> granted)>;

struct ClientCallbacks {
  std::function<void(const Message&)> on_message;
  // When false, a QoS 1 message is acknowledged as soon as on_message returns. When true, the
  // application calls Client::ack() once it has dealt with the message (end-to-end delivery).
  bool manual_ack = false;
  // With manual_ack: at most this many messages (QoS 0 and 1) are handed to on_message and not
  // yet acknowledged; ack() releases a QoS 0 message's place too. Messages arriving beyond it
  // wait, in order, and the client stops reading from the broker while one waits, so the broker
  // holds the rest back. It reads on while it awaits a PUBACK or SUBACK of its own, which come on
  // the same connection. 0: no limit.
  std::size_t receive_window = 0;
  std::function<void(bool session_present)> on_connected;
  std::function<void(const std::string& reason)> on_disconnected;
  // A connection attempt failed (unreachable, TLS, refused CONNACK, timeout); the client retries
  // after the backoff.
  std::function<void(const std::string& error)> on_connect_error;
  // An error that stops the client, e.g. a refused subscription with validatesubs on.
  std::function<void(const std::string& error)> on_error;
};

// A thread running an io_context, for clients to share: their callbacks all run on it, and one
// client's callback can publish through another, or acknowledge a message of another, without a
// switch to another thread (baetyl-remote-mqtt runs the two clients of a rule on one). Destroy it
// after the clients on it: its destructor waits for the work they left to finish.
class IoThread {
 public:
  IoThread();
  ~IoThread();
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  asio::io_context& context() { return io_; }
  bool running_here() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

class Client {
 public:
  // Without `thread`, the client starts a thread of its own in start() and joins it in stop().
  explicit Client(ClientConfig config, std::shared_ptr<spdlog::logger> logger = nullptr,
                  std::shared_ptr<IoThread> thread = nullptr);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Starts connecting in the background. Throws std::invalid_argument for a bad address or (MQTT
  // 3.1.1) an empty client id without clean session, and std::runtime_error for unreadable TLS
  // files.
  void start(ClientCallbacks callbacks = {});
  // Sends DISCONNECT when connected and stops. Messages not yet acknowledged complete with
  // asio::error::operation_aborted.
  void stop();

  // Every publishing call throws std::invalid_argument for a message that cannot be sent: QoS 2,
  // an invalid topic, properties with MQTT 3.1.1 or ones a client may not send (Topic Alias,
  // Subscription Identifier), or, with MQTT 5 while connected, a packet larger than the broker's
  // Maximum Packet Size.
  //
  // Queues a message; `done` runs once a QoS 1 message is acknowledged or a QoS 0 message is
  // written (or with an error when the client stops first, or, with MQTT 5, a reason_category()
  // error when the broker refuses it). Never blocks, never drops.
  void async_publish(Publish message, PublishHandler done = {});
  // Waits while `buffersize` messages are queued or in flight, then queues the message. Throws
  // std::runtime_error when the client is stopped, std::logic_error when called on the client's
  // own thread while it would have to wait.
  void publish(Publish message);
  void publish(const std::string& topic, std::string payload, int qos = 0, bool retain = false);
  // Like publish(), but gives up after `timeout` without queueing; returns whether it queued.
  // `done` runs as for async_publish() when it queued.
  bool try_publish(Publish message, std::chrono::milliseconds timeout, PublishHandler done = {});

  // Acknowledges a QoS 1 message received with manual_ack. Ignored for a message delivered on an
  // earlier connection (the broker will send that one again), and for QoS 0 unless a receive
  // window is set (then it frees the message's place in the window).
  void ack(const Message& message) { ack(message.receipt()); }
  void ack(const Receipt& receipt);

  // Adds subscriptions (kept for reconnects) and sends them now when connected. With MQTT 5 the
  // TopicInfo options go with them, and an invalid subscription throws std::invalid_argument (with
  // 3.1.1, options other than the defaults do).
  void subscribe(std::vector<TopicInfo> topics, SubscribeHandler done = {});
  void unsubscribe(std::vector<std::string> topics);

  bool connected() const { return connected_.load(); }
  // Blocks until connected or the timeout passes.
  bool wait_connected(std::chrono::milliseconds timeout);
  // Messages queued or in flight.
  std::size_t outstanding() const;
  // Blocks until nothing is queued or in flight (every QoS 1 message acknowledged), or the
  // timeout passes. Returns whether the client is idle.
  bool wait_idle(std::chrono::milliseconds timeout);
  const ClientConfig& config() const { return config_; }
  // MQTT 5: the Maximum Packet Size of the broker's last CONNACK; 0 when it set none.
  std::uint32_t broker_maximum_packet_size() const { return broker_max_packet_.load(); }

 private:
  struct Impl;

  bool on_own_thread() const;

  ClientConfig config_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<IoThread> shared_thread_;
  std::shared_ptr<Impl> impl_;
  std::thread thread_;  // without a shared thread
  bool started_ = false;
  std::shared_future<void> ended_;  // with a shared thread: the client's loop has finished
  std::atomic<bool> connected_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<std::uint32_t> broker_max_packet_{0};

  mutable std::mutex flow_mutex_;
  std::condition_variable flow_changed_;
  std::size_t outstanding_ = 0;

  void check_publishable(Publish& message) const;
  void check_subscribable(const std::vector<TopicInfo>& topics) const;
  void enqueue(Publish message, PublishHandler done);
  void mark_stopped();
  void release_outstanding();
  bool reserve_slot(std::unique_lock<std::mutex>& lock, std::chrono::milliseconds timeout);
  void set_connected(bool connected);
};

}  // namespace baetyl::mqtt
