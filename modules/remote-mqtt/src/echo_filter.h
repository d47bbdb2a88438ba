#pragma once
// Loop prevention. MQTT 3.1.1 has no "no local" subscription option and no room for a marker
// on a message, so a broker hands a message the bridge published back to any of the bridge's
// clients subscribed to its topic. Forwarded into such a subscription, it would come back and be
// forwarded again, without end (rules `a/#` up and `a/#` down).
//
// Before forwarding a message to a side, the bridge tells the EchoFilter of each of its clients
// there that would receive it (and forward it back) to expect one copy: same topic, same
// payload. When such a client receives a message it first asks its filter: an expected copy is
// the echo, acknowledged and dropped. Expectations are counted, so N identical messages forwarded
// expect N echoes, and they lapse after `window` (an echo that never comes, such as a QoS 0 copy
// the broker dropped, must not swallow a later message of the same content for long).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace baetyl::remote {

// Identifies a message by topic and payload (64-bit hash).
std::uint64_t echo_key(std::string_view topic, std::string_view payload);

class EchoFilter {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kDefaultWindow{10};
  static constexpr std::size_t kDefaultCapacity = 65536;

  explicit EchoFilter(std::chrono::milliseconds window = kDefaultWindow,
                      std::size_t capacity = kDefaultCapacity)
      : window_(window), capacity_(capacity) {}

  // One copy of the message `key` will come back.
  void expect(std::uint64_t key, Clock::time_point now = Clock::now());
  // True when `key` was expected: the message is an echo (and one expectation is used up).
  bool consume(std::uint64_t key, Clock::time_point now = Clock::now());
  // Expectations not yet used up or lapsed.
  std::size_t pending() const;
  // Nothing expected (lock-free; callers skip hashing the message then).
  bool empty() const { return registered_.load(std::memory_order_relaxed) == 0; }

 private:
  struct Entry {
    std::uint32_t expected = 0;  // registrations still in order_
    std::uint32_t consumed = 0;  // of those, already matched by an echo (the oldest ones)
  };
  void drop_oldest();
  void expire(Clock::time_point now);

  const std::chrono::milliseconds window_;
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, Entry> entries_;
  std::deque<std::pair<Clock::time_point, std::uint64_t>> order_;
  std::atomic<std::size_t> registered_{0};  // order_.size(): a lock-free "nothing expected"
  std::size_t consumed_total_ = 0;
};

}  // namespace baetyl::remote
