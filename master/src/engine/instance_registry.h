#pragma once
// The native engine's state file: which processes this master started and has not reaped yet, so
// that the next master can stop them after a crash.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <nlohmann/json.hpp>

namespace baetyl::master {

struct InstanceRecord {
  pid_t pid = 0;
  pid_t pgid = 0;
  std::uint64_t start_ticks = 0;  // with pid, tells the process from a later one with that pid
  std::string service;
  std::string instance;
  bool operator==(const InstanceRecord&) const = default;
};

void to_json(nlohmann::json& j, const InstanceRecord& record);
void from_json(const nlohmann::json& j, InstanceRecord& record);

// Thread-safe. The file is {"instances":[{"pid","pgid","start_ticks","service","instance"},...]},
// rewritten whole (temporary file, fsync, rename) on every change.
class InstanceRegistry {
 public:
  // Reads what a previous master left in `file` (an unreadable file counts as empty, with a
  // warning); those records stay in the file until clear_leftovers().
  InstanceRegistry(std::filesystem::path file, std::shared_ptr<spdlog::logger> logger);

  const std::filesystem::path& file() const { return file_; }
  std::vector<InstanceRecord> leftovers() const;
  void clear_leftovers();
  void add(const InstanceRecord& record);
  void remove(pid_t pid);

 private:
  void save_locked();

  std::filesystem::path file_;
  std::shared_ptr<spdlog::logger> logger_;
  mutable std::mutex mutex_;
  std::vector<InstanceRecord> leftovers_;
  std::map<pid_t, InstanceRecord> running_;
};

}  // namespace baetyl::master
