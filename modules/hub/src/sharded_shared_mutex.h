#pragma once
// A reader-writer lock for data that every worker reads for every message and that changes
// rarely (the subscription tree). A std::shared_mutex keeps its readers' count on one cache line
// that every reader writes: with two workers publishing at once that line moves between the
// cores on every message (about a tenth of the hub's CPU at QoS 0). Here each thread takes its
// shared lock on a shard of its own; a writer locks every shard.
#include <array>
#include <atomic>
#include <cstddef>
#include <shared_mutex>

namespace baetyl::hub {

class ShardedSharedMutex {
 public:
  void lock() {
    for (auto& shard : shards_) shard.mutex.lock();
  }
  void unlock() {
    for (auto& shard : shards_) shard.mutex.unlock();
  }
  void lock_shared() { shards_[thread_shard()].mutex.lock_shared(); }
  void unlock_shared() { shards_[thread_shard()].mutex.unlock_shared(); }

 private:
  static constexpr std::size_t kShards = 16;  // threads beyond share shards, still correct

  struct alignas(64) Shard {
    std::shared_mutex mutex;
  };

  // Fixed for the thread's life, so unlock_shared finds the shard lock_shared took.
  static std::size_t thread_shard() {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t shard = next.fetch_add(1) % kShards;
    return shard;
  }

  std::array<Shard, kShards> shards_;
};

}  // namespace baetyl::hub
