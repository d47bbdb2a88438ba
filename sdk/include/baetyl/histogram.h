#pragma once
// A latency histogram for the stats a module reports to the master, rendered by the master as a
// Prometheus histogram (`_bucket{le=...}`, `_sum`, `_count`). observe() is a few relaxed atomic
// adds, cheap enough for a hot path; a reader sees each bucket's own count, not one snapshot.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

namespace baetyl {

// Upper bounds in seconds, for calls of a few milliseconds: 0.5 ms to 10 s.
inline constexpr std::array<double, 14> kLatencyBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

class LatencyHistogram {
 public:
  LatencyHistogram() {
    for (std::size_t i = 0; i < kBounds; ++i) {
      bounds_ns_[i] = static_cast<std::int64_t>(kLatencyBuckets[i] * 1e9 + 0.5);
    }
  }
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  void observe(std::chrono::nanoseconds duration) {
    const std::int64_t ns = std::max<std::int64_t>(duration.count(), 0);
    const auto bucket = static_cast<std::size_t>(
        std::lower_bound(bounds_ns_.begin(), bounds_ns_.end(), ns) - bounds_ns_.begin());
    counts_[bucket].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
  }

  // {"le": [bounds in seconds], "buckets": [cumulative counts, one per bound], "sum": seconds,
  // "count": observations (the +Inf bucket)}: what the master reads.
  nlohmann::json to_json() const {
    nlohmann::json le = nlohmann::json::array();
    nlohmann::json buckets = nlohmann::json::array();
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kBounds; ++i) {
      cumulative += counts_[i].load(std::memory_order_relaxed);
      le.push_back(kLatencyBuckets[i]);
      buckets.push_back(cumulative);
    }
    cumulative += counts_[kBounds].load(std::memory_order_relaxed);
    return {{"le", std::move(le)},
            {"buckets", std::move(buckets)},
            {"sum", static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9},
            {"count", cumulative}};
  }

 private:
  static constexpr std::size_t kBounds = kLatencyBuckets.size();
  std::array<std::int64_t, kBounds> bounds_ns_{};
  std::array<std::atomic<std::uint64_t>, kBounds + 1> counts_{};  // the last: above every bound
  std::atomic<std::uint64_t> sum_ns_{0};
};

}  // namespace baetyl
