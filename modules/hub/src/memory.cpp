#include "memory.h"

#include <malloc.h>

#include <atomic>

namespace baetyl::hub::memory {
namespace {

constexpr std::size_t kStep = 1024 * 1024;
std::atomic<std::size_t> noted{0};
thread_local std::size_t noted_here = 0;

}  // namespace

void keep_working_reserve() {
  // Setting either turns off glibc's own adjustment of both: both are set.
  ::mallopt(M_TRIM_THRESHOLD, static_cast<int>(kTrimThreshold));
  ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMmapThreshold));
}

void note_freed(std::size_t bytes) {
  noted_here += bytes;
  if (noted_here >= kStep) {
    noted.fetch_add(noted_here, std::memory_order_relaxed);
    noted_here = 0;
  }
}

std::size_t freed() { return noted.load(std::memory_order_relaxed); }

bool trim_if_freed(std::size_t threshold) {
  if (noted.load(std::memory_order_relaxed) < threshold) return false;
  noted.store(0, std::memory_order_relaxed);
  ::malloc_trim(0);
  return true;
}

}  // namespace baetyl::hub::memory
