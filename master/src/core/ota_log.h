#pragma once
// var/db/baetyl/ota.log: one JSON line per update step, {"step","type","trace","time"} plus
// "error" on failures; the agent follows it to report update progress.
#include <filesystem>
#include <mutex>
#include <string>

namespace baetyl::master {

inline constexpr const char* kOtaLogFile = "var/db/baetyl/ota.log";

namespace ota_step {
inline constexpr const char* kReceived = "RECEIVED";
inline constexpr const char* kUpdating = "UPDATING";
inline constexpr const char* kUpdated = "UPDATED";
inline constexpr const char* kRestarting = "RESTARTING";
inline constexpr const char* kRestarted = "RESTARTED";
inline constexpr const char* kRollingBack = "ROLLINGBACK";
inline constexpr const char* kRolledBack = "ROLLEDBACK";
inline constexpr const char* kFailure = "FAILURE";
}  // namespace ota_step

class OtaLog {
 public:
  explicit OtaLog(std::filesystem::path path);
  // Appends one line and flushes it to disk; errors are returned as text (empty on success)
  // because a full disk must not stop the update itself.
  std::string append(const std::string& step, const std::string& type, const std::string& trace,
                     const std::string& error = {});

 private:
  std::filesystem::path path_;
  std::mutex mutex_;
};

}  // namespace baetyl::master
