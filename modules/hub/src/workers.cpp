#include "workers.h"

#include <time.h>

namespace baetyl::hub {
namespace {

thread_local const Workers* this_workers = nullptr;
thread_local std::size_t this_index = 0;

std::int64_t steady_nanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::int64_t thread_cpu_nanos() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

std::optional<std::size_t> current_worker() {
  if (this_workers == nullptr) return std::nullopt;
  return this_index;
}

Workers::Workers(std::vector<asio::io_context*> contexts, Policy policy)
    : contexts_(std::move(contexts)), policy_(policy), loads_(contexts_.size()) {}

void Workers::run(std::size_t index) {
  this_workers = this;
  this_index = index;
  loads_[index].last_wall = steady_nanos();
  loads_[index].last_cpu = thread_cpu_nanos();
  contexts_[index]->run();
  this_workers = nullptr;
}

std::optional<asio::io_context::executor_type> Workers::current_executor() const {
  if (this_workers != this) return std::nullopt;
  return contexts_[this_index]->get_executor();
}

void Workers::sample() {
  if (this_workers != this) return;
  Load& load = loads_[this_index];
  const std::int64_t now = steady_nanos();
  const std::int64_t wall = now - load.last_wall;
  if (wall < std::chrono::nanoseconds(kSampleInterval).count()) return;
  const std::int64_t cpu = thread_cpu_nanos();
  const auto permille = static_cast<std::uint32_t>(
      std::min<std::int64_t>(1000, (cpu - load.last_cpu) * 1000 / wall));
  load.permille.store(permille, std::memory_order_relaxed);
  load.sampled_at.store(now, std::memory_order_relaxed);
  load.last_wall = now;
  load.last_cpu = cpu;
}

double Workers::busy(std::size_t index) const {
  const Load& load = loads_[index];
  if (steady_nanos() - load.sampled_at.load(std::memory_order_relaxed) >
      std::chrono::nanoseconds(kStale).count()) {
    return 0;
  }
  return load.permille.load(std::memory_order_relaxed) / 1000.0;
}

bool Workers::may_write_directly() const {
  return this_workers == this && busy(this_index) < policy_.direct_below;
}

std::optional<asio::io_context::executor_type> Workers::offload_target(std::size_t bytes) const {
  if (this_workers != this || bytes < policy_.min_bytes || contexts_.size() < 2) {
    return std::nullopt;
  }
  const double mine = busy(this_index);
  if (mine < policy_.busy) return std::nullopt;
  std::size_t best = this_index;
  double least = mine;
  for (std::size_t i = 0; i < contexts_.size(); ++i) {
    if (i == this_index) continue;
    const double b = busy(i);
    if (b < least) {
      least = b;
      best = i;
    }
  }
  if (best == this_index || least > mine - policy_.margin) return std::nullopt;
  return contexts_[best]->get_executor();
}

}  // namespace baetyl::hub
