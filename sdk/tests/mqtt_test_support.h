#pragma once
// Helpers of the MQTT client tests (3.1.1 and MQTT 5): a client configuration for tests, a
// thread-safe inbox, and a broker played by hand on a loopback socket.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "baetyl/mqtt/client.h"
#include "baetyl/mqtt/codec.h"
#include "baetyl/testing/ports.h"

namespace baetyl::testing::mqtt {

using namespace std::chrono_literals;
using baetyl::error_code;
using baetyl::mqtt::Client;
using baetyl::mqtt::ClientCallbacks;
using baetyl::mqtt::ClientConfig;
using baetyl::mqtt::Message;
using baetyl::mqtt::Publish;

inline ClientConfig config_for(const std::string& address, const std::string& client_id) {
  ClientConfig config;
  config.address = address;
  config.client_id = client_id;
  config.clean_session = true;
  config.timeout = 5s;
  config.interval = 1s;
  config.keepalive = 10s;
  return config;
}

// Collects messages delivered to on_message, thread-safely.
class Inbox {
 public:
  ClientCallbacks callbacks(bool manual_ack = false) {
    ClientCallbacks callbacks;
    callbacks.manual_ack = manual_ack;
    callbacks.on_message = [this](const Message& message) {
      std::lock_guard lock(mutex_);
      messages_.push_back(message);
      changed_.notify_all();
    };
    return callbacks;
  }

  std::vector<Message> wait_for(std::size_t count, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return messages_.size() >= count; });
    return messages_;
  }

  std::vector<Message> snapshot() {
    std::lock_guard lock(mutex_);
    return messages_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Message> messages_;
};

inline Publish message(const std::string& topic, const std::string& payload, int qos) {
  Publish p;
  p.topic = topic;
  p.payload = payload;
  p.qos = static_cast<std::uint8_t>(qos);
  return p;
}

inline std::future<error_code> publish_async(Client& client, Publish p) {
  auto promise = std::make_shared<std::promise<error_code>>();
  auto future = promise->get_future();
  client.async_publish(std::move(p), [promise](error_code ec) { promise->set_value(ec); });
  return future;
}

// Subscribes and waits for the SUBACK; returns its codes (none on an error or after 5 s).
inline std::vector<std::uint8_t> subscribe(Client& client,
                                           std::vector<baetyl::mqtt::TopicInfo> topics) {
  std::promise<std::vector<std::uint8_t>> granted;
  auto future = granted.get_future();
  client.subscribe(std::move(topics), [&](error_code ec, std::vector<std::uint8_t> codes) {
    if (ec) codes.clear();
    granted.set_value(codes);
  });
  if (future.wait_for(5s) != std::future_status::ready) return {};
  return future.get();
}

inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// Plays a broker by hand on a loopback socket: accepts a client and answers its CONNECT. It
// speaks `version` (3.1.1 unless told otherwise) once the CONNECT is read.
class ScriptedBroker {
 public:
  explicit ScriptedBroker(
      baetyl::mqtt::ProtocolVersion version = baetyl::mqtt::ProtocolVersion::V311)
      : version_(version) {}
  ~ScriptedBroker() { drop_client(); }
  std::uint16_t port() const { return listener_.port(); }
  std::string address() const { return "tcp://127.0.0.1:" + std::to_string(port()); }

  // Accepts the next connection and returns its CONNECT, unanswered.
  baetyl::mqtt::Connect accept_connect() {
    drop_client();
    fd_ = ::accept(listener_.fd(), nullptr, nullptr);
    if (fd_ < 0) throw std::runtime_error("accept failed");
    auto packet = next();
    auto* connect = std::get_if<baetyl::mqtt::Connect>(&packet);
    if (!connect) throw std::runtime_error("the client's first packet is not CONNECT");
    return *connect;
  }
  void accept_client(baetyl::mqtt::Connack connack = {}) {
    accept_connect();
    send(connack);
  }
  // Closes the connection to the client (which then reconnects).
  void drop_client() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buffer_.clear();
  }

  baetyl::mqtt::Packet next() {
    auto packet = next_within(30s);
    if (!packet) throw std::runtime_error("no packet from the client within 30 s");
    return *packet;
  }
  // The next packet, or nothing when none arrives within `timeout`. Throws when the client
  // closes the connection.
  std::optional<baetyl::mqtt::Packet> next_within(std::chrono::milliseconds timeout) {
    char chunk[4096];
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto result = baetyl::mqtt::decode(buffer_, {}, version_);
      if (result.status == baetyl::mqtt::DecodeStatus::Ok) {
        buffer_.erase(0, result.consumed);
        return result.packet;
      }
      if (result.status == baetyl::mqtt::DecodeStatus::Error) {
        throw std::runtime_error("bad packet from the client: " + result.error);
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        return std::nullopt;
      }
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n <= 0) throw std::runtime_error("client closed the connection");
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  void send(const baetyl::mqtt::Packet& packet) { send_together({packet}); }
  // One write, so that the client reads the packets together.
  void send_together(const std::vector<baetyl::mqtt::Packet>& packets) {
    std::string bytes;
    for (const auto& packet : packets) baetyl::mqtt::encode(packet, bytes, version_);
    send_bytes(bytes);
  }
  void send_bytes(const std::string& bytes) {
    ASSERT_EQ(::write(fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  // Writes `packet` over and over until the client has not read anything for `stall`, or `limit`
  // bytes went out; returns how many were written.
  std::size_t flood(const baetyl::mqtt::Publish& packet, std::size_t limit,
                    std::chrono::milliseconds stall) {
    const std::string bytes = baetyl::mqtt::encode(packet, version_);
    std::size_t sent = 0;
    std::size_t offset = 0;
    while (sent < limit / bytes.size()) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(stall.count())) <= 0) break;
      ssize_t n = ::send(fd_, bytes.data() + offset, bytes.size() - offset, MSG_DONTWAIT);
      if (n <= 0) continue;
      offset += static_cast<std::size_t>(n);
      if (offset == bytes.size()) {
        offset = 0;
        ++sent;
      }
    }
    // Complete a packet cut short, so that the client sees whole packets only.
    while (offset > 0 && offset < bytes.size()) {
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      ssize_t n = ::send(fd_, bytes.data() + offset, bytes.size() - offset, MSG_DONTWAIT);
      if (n > 0) offset += static_cast<std::size_t>(n);
      if (offset == bytes.size()) ++sent;
    }
    return sent;
  }

 private:
  baetyl::mqtt::ProtocolVersion version_;
  baetyl::testing::LoopbackListener listener_;
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace baetyl::testing::mqtt
