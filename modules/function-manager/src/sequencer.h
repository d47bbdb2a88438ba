#pragma once
// A reorder buffer: results are handed on in the order their positions were reserved (the input
// order), those that complete early are held back until every earlier one has completed. When
// not `ordered`, results are handed on as they complete.
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>

namespace baetyl::function {

template <class T>
class OutputSequencer {
 public:
  using Emit = std::function<void(T&)>;

  OutputSequencer(bool ordered, Emit emit) : ordered_(ordered), emit_(std::move(emit)) {}

  bool ordered() const { return ordered_; }

  // The position of the next input; every reserved position must be completed exactly once.
  std::uint64_t reserve() {
    if (!ordered_) return 0;
    std::lock_guard lock(mutex_);
    slots_.emplace_back();
    return head_ + slots_.size() - 1;
  }

  void complete(std::uint64_t position, T value) {
    if (!ordered_) {
      emit_(value);
      return;
    }
    // Emitting under the lock keeps two completing threads from overtaking each other.
    std::lock_guard lock(mutex_);
    slots_[position - head_] = std::move(value);
    while (!slots_.empty() && slots_.front()) {
      emit_(*slots_.front());
      slots_.pop_front();
      ++head_;
    }
  }

  // Results completed but waiting for an earlier one.
  std::size_t held() const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& slot : slots_) n += slot.has_value();
    return n;
  }

 private:
  const bool ordered_;
  const Emit emit_;
  mutable std::mutex mutex_;
  std::uint64_t head_ = 0;  // position of slots_.front()
  std::deque<std::optional<T>> slots_;
};

}  // namespace baetyl::function
