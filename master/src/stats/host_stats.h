#pragma once
// Hardware and per-process figures for inspect, read from /proc, statvfs and nvidia-smi.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "baetyl/api/inspect.h"

namespace baetyl::master {

// Figures are read at most this often; calls in between return the last reading (inspect may be
// asked hundreds of times a second, and a share of CPU over a few milliseconds means nothing).
inline constexpr std::chrono::milliseconds kRefresh{1000};

// The host: mem_stats from /proc/meminfo, cpu_stats from /proc/stat (busy share over the last
// window of at least half a CPU-second, measured from construction on, so it never waits),
// disk_stats of the file system holding `disk_path` (statvfs), gpu_stats from
// `nvidia-smi --query-gpu=...` when it is on PATH (absent otherwise). Thread-safe.
class HostStats {
 public:
  explicit HostStats(std::string disk_path);
  api::Hardware collect();

 private:
  std::string disk_path_;
  std::mutex mutex_;
  std::uint64_t last_busy_ = 0;
  std::uint64_t last_total_ = 0;
  std::optional<double> last_cpu_percent_;
  std::optional<api::Hardware> last_hardware_;
  std::chrono::steady_clock::time_point last_collected_{};
};

// One process: {"cpu_stats":{"used_percent"},"mem_stats":{"total","used","used_percent"}} where
// cpu is the share of one core used since the previous call (since the process started on the
// first), mem used is the resident set size and total the host's memory. Null when the process is
// gone. Thread-safe.
class ProcessStats {
 public:
  explicit ProcessStats(pid_t pid);
  nlohmann::json collect();
  // The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat); nullopt when
  // it is gone. With the pid it identifies a process across pid reuse.
  static std::optional<std::uint64_t> start_ticks(pid_t pid);

 private:
  pid_t pid_;
  std::mutex mutex_;
  std::uint64_t last_cpu_ticks_ = 0;
  std::chrono::steady_clock::time_point last_time_{};
  bool sampled_ = false;
  nlohmann::json last_result_;
};

}  // namespace baetyl::master
