#include "echo_filter.h"

#include <functional>

namespace baetyl::remote {

std::uint64_t echo_key(std::string_view topic, std::string_view payload) {
  std::hash<std::string_view> hash;
  std::uint64_t h = hash(topic);
  h ^= hash(payload) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

void EchoFilter::expect(std::uint64_t key, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  expire(now);
  if (order_.size() >= capacity_) drop_oldest();
  ++entries_[key].expected;
  order_.emplace_back(now, key);
  registered_.store(order_.size(), std::memory_order_relaxed);
}

bool EchoFilter::consume(std::uint64_t key, Clock::time_point now) {
  if (registered_.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard lock(mutex_);
  expire(now);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.consumed >= it->second.expected) return false;
  ++it->second.consumed;
  ++consumed_total_;
  // Echoes mostly come in the order of their messages: drop used-up expectations from the front
  // at once rather than when they lapse, so that they do not take up the capacity.
  while (!order_.empty()) {
    auto front = entries_.find(order_.front().second);
    if (front == entries_.end() || front->second.consumed == 0) break;
    drop_oldest();
  }
  registered_.store(order_.size(), std::memory_order_relaxed);
  return true;
}

std::size_t EchoFilter::pending() const {
  std::lock_guard lock(mutex_);
  return order_.size() - consumed_total_;
}

void EchoFilter::drop_oldest() {
  auto key = order_.front().second;
  order_.pop_front();
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  // Echoes match the oldest expectations of a key first, so the one leaving is a consumed one
  // if any is.
  if (it->second.consumed > 0) {
    --it->second.consumed;
    --consumed_total_;
  }
  if (--it->second.expected == 0) entries_.erase(it);
}

void EchoFilter::expire(Clock::time_point now) {
  while (!order_.empty() && now - order_.front().first >= window_) drop_oldest();
  registered_.store(order_.size(), std::memory_order_relaxed);
}

}  // namespace baetyl::remote
