#pragma once
// The update waiter: what the master's process becomes when it hands over to a new master binary,
// so that the rollback never depends on code in the new binary. The old master stops its services
// and releases the API socket (and every other descriptor but the work directory's lock, see
// master_lock.h), then execs its own image as `baetyl update-waiter`, which starts the new binary
// (the marker's `binary`, as `start -w W`) as its child, in a process group of its own and with
// the lock's descriptor, and waits, up to the marker's timeout, for it to report healthy: to remove
// the marker once every service started (master_update.h). If instead the child exits, crashes or
// does not report in time, the waiter stops it (SIGTERM, the marker's grace, SIGKILL), puts
// bin/baetyl.old back, logs ROLLINGBACK in ota.log, marks the marker "rollingback" with the reason
// and starts the old binary, which logs ROLLEDBACK and shows the reason in inspect's `error`.
//
// Once the new master is healthy the waiter stays as its parent, the process that systemd or the
// terminal started: it forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the
// master and exits with its status (128 + N after signal N). It holds no thread and no descriptor
// but the lock's, so the lock is never free while a master or the waiter runs; the lock file
// names the master under the waiter, or the waiter between two masters. When a child ends, the
// waiter kills whatever is left in its process group (a binary that is not a master may leave
// processes there that hold the lock) before it starts the next.
// A later master update does not add a second waiter: a master started by a waiter ends with
// kHandOverExitCode once it stopped its services, and the waiter starts the next binary the same
// way. A master whose waiter dies gets SIGTERM (PR_SET_PDEATHSIG).
#include <filesystem>
#include <string>
#include <vector>

namespace baetyl::master {

// The hidden command: baetyl update-waiter <workdir> -- <start arguments...>
inline constexpr const char* kUpdateWaiterCommand = "update-waiter";
// Set by the waiter for its child: its own pid.
inline constexpr const char* kUpdateWaiterVariable = "BAETYL_UPDATE_WAITER";
// The exit code of a master started by a waiter that stopped to let a new binary start.
inline constexpr int kHandOverExitCode = 75;

// For `start`: whether this process was started by an update waiter (its parent, named by
// kUpdateWaiterVariable). Removes the variable from the environment either way, so services and
// child processes never inherit it.
bool take_update_waiter();

// Replaces this process, whose master has stopped, by the update waiter, which then starts the
// marker's binary with `start_args` (e.g. {"start", "-w", W}). Returns only when the exec failed,
// with the reason.
std::string exec_update_waiter(const char* argv0, const std::filesystem::path& workdir,
                               const std::vector<std::string>& start_args);

// The waiter itself; argv as exec_update_waiter builds it. Returns the exit code of the process.
int run_update_waiter(int argc, char** argv);

}  // namespace baetyl::master
