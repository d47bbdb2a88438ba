#pragma once
// What a native instance writes on stdout and stderr: read from a pipe by a thread of its own,
// written line by line to the instance's log file under var/log/baetyl/services/ (each line
// prefixed with the UTC time it was read, rotated like the master's own log) and, optionally,
// echoed on the master's stderr prefixed with the instance name.
#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include <spdlog/logger.h>

#include "baetyl/log/logger.h"

namespace baetyl::master {

// The log files of instances, one logger per instance name, shared by the captures of successive
// runs of the same instance so that only one sink ever rotates a file.
class InstanceLogFiles {
 public:
  InstanceLogFiles(std::filesystem::path dir, log::RotationPolicy policy);
  // The file of `instance`: <dir>/<instance>.log. Throws when it cannot be opened.
  std::shared_ptr<spdlog::logger> open(const std::string& instance);
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  log::RotationPolicy policy_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::weak_ptr<spdlog::logger>> open_;
};

// The line format of an instance log file: "2026-12-07T00:52:33.123Z <line>".
inline constexpr const char* kInstanceLogPattern = "%Y-%m-%dT%H:%M:%S.%eZ %v";

class OutputCapture {
 public:
  // Takes `read_fd` (the read end of the instance's output pipe) and reads it until every writer
  // closed it or the capture is destroyed.
  OutputCapture(int read_fd, std::string instance, std::shared_ptr<spdlog::logger> file, bool echo);
  // Reads what is left in the pipe without waiting for more, then stops.
  ~OutputCapture();
  OutputCapture(const OutputCapture&) = delete;
  OutputCapture& operator=(const OutputCapture&) = delete;

 private:
  void run();
  // Writes the complete lines of pending_ (all of it when `flush_partial`).
  void emit(bool flush_partial);

  int fd_;
  std::string instance_;
  std::shared_ptr<spdlog::logger> file_;
  bool echo_;
  std::string pending_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace baetyl::master
