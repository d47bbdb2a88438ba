#pragma once
// var/db/baetyl/ota.log, the progress of updates: the master appends one JSON line per step,
// {"step","type","trace","time"} plus "error" on failures; the agent follows the file to report
// the steps of the update it asked for.
namespace baetyl::api {

// The file, relative to the master's work directory.
inline constexpr const char* kOtaLogFile = "var/db/baetyl/ota.log";

// The steps of an update, with the original's names. The master writes all but TIMEOUT, which
// the agent reports itself when no final step came in time.
namespace ota_step {
inline constexpr const char* kReceived = "RECEIVED";
inline constexpr const char* kUpdating = "UPDATING";
inline constexpr const char* kUpdated = "UPDATED";
inline constexpr const char* kRestarting = "RESTARTING";
inline constexpr const char* kRestarted = "RESTARTED";
inline constexpr const char* kRollingBack = "ROLLINGBACK";
inline constexpr const char* kRolledBack = "ROLLEDBACK";
inline constexpr const char* kFailure = "FAILURE";
inline constexpr const char* kTimeout = "TIMEOUT";
}  // namespace ota_step

}  // namespace baetyl::api
