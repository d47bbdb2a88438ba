#pragma once
// The hub's worker threads as a connection sees them: which one it runs on, how busy each has
// been lately, and where to hand a write when its own worker is the busy one.
//
// A connection's reads and writes stay on the worker it was accepted on. One publisher's reads
// cannot be split, so when its worker also serves some of its subscribers, that worker is the
// limit while another idles (one publisher, four subscribers: three quarters of the work on one
// of two workers). A large write of a plain TCP connection on a worker that is much busier than
// another is then sent by the other one (see Connection::write_out).
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "baetyl/asio.h"

namespace baetyl::hub {

// When a write moves: the writing worker at least `busy` busy, another at least `margin` less
// busy, and the write at least `min_bytes`. And the other way: a worker less than `direct_below`
// busy writes the QoS 0 packets it delivers to a connection of another worker itself.
struct OffloadPolicy {
  double busy = 0.6;
  double margin = 0.15;
  std::size_t min_bytes = 16 * 1024;
  double direct_below = 0.25;
};

class Workers {
 public:
  using Policy = OffloadPolicy;

  explicit Workers(std::vector<asio::io_context*> contexts, Policy policy = {});

  std::size_t size() const { return contexts_.size(); }
  asio::io_context::executor_type executor(std::size_t index) const {
    return contexts_[index]->get_executor();
  }
  // Runs worker `index` on the calling thread until its io_context stops.
  void run(std::size_t index);
  // The executor of the worker the calling thread runs, or nullopt on any other thread.
  std::optional<asio::io_context::executor_type> current_executor() const;

  // Records the calling worker's CPU time (at most every kSampleInterval): its share of the
  // wall time since the previous sample is its busy fraction. Cheap to call often.
  void sample();
  // The busy fraction of worker `index` in its last sample; 0 when that is older than kStale
  // (a worker that samples nothing is idle).
  double busy(std::size_t index) const;

  // Where a write of `bytes` on the calling worker should be sent from instead (the least busy
  // other worker, as the policy says); nullopt to write as usual.
  std::optional<asio::io_context::executor_type> offload_target(std::size_t bytes) const;
  // Whether the calling worker may write to a connection of another worker (see OffloadPolicy).
  bool may_write_directly() const;

  static constexpr auto kSampleInterval = std::chrono::milliseconds(5);
  static constexpr auto kStale = std::chrono::milliseconds(50);

 private:
  struct alignas(64) Load {
    std::atomic<std::uint32_t> permille{0};     // busy fraction x 1000
    std::atomic<std::int64_t> sampled_at{0};    // steady clock, nanoseconds
    // Written by the worker's own thread only.
    std::int64_t last_wall = 0;
    std::int64_t last_cpu = 0;
  };

  std::vector<asio::io_context*> contexts_;
  Policy policy_;
  std::vector<Load> loads_;
};

// The index of the worker the calling thread runs, or nullopt.
std::optional<std::size_t> current_worker();

}  // namespace baetyl::hub
