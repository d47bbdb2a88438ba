#pragma once
// The operator's commands on a running master: inspect, list, logs, restart and stop. Each finds
// the master through var/run/baetyl/admin.json in the work directory (its API address, the admin
// credentials and its pid) and prints a clear message when no master runs there.
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace baetyl::master {

struct OpsArguments {
  std::filesystem::path workdir;                  // absolute
  std::vector<std::string> operands;              // logs: SERVICE [INSTANCE]; restart: SERVICE
  bool json = false;                              // list --json
  bool follow = false;                            // logs -f
  std::optional<std::size_t> tail;                // logs --tail N
  std::optional<std::chrono::nanoseconds> since;  // logs --since DURATION
};

// Each returns the exit code: 0 on success, 1 on a failure printed on stderr.
int run_inspect(const OpsArguments& args);
int run_list(const OpsArguments& args);
int run_logs(const OpsArguments& args);
int run_restart(const OpsArguments& args);
int run_stop(const OpsArguments& args);

// One row of `baetyl list` per instance of the inspect document: service, instance, status,
// restarts, uptime (seconds, running instances only), pid or container, cpu (percent), memory
// (bytes) and image; what inspect does not say is null.
nlohmann::json list_rows(const nlohmann::json& inspect, std::chrono::system_clock::time_point now);
// The rows as an aligned table with a header line.
std::string format_table(const nlohmann::json& rows);

// The log files of `instance` in `dir`, oldest first: the rotated <instance>.<N>.log from the
// highest N down, then <instance>.log. Only those that exist.
std::vector<std::filesystem::path> instance_log_files(const std::filesystem::path& dir,
                                                      const std::string& instance);
// The lines of instance log files (oldest first) whose time prefix is at or after `since` when
// given, the last `tail` of them when given.
std::vector<std::string> select_log_lines(
    const std::vector<std::filesystem::path>& files,
    std::optional<std::chrono::system_clock::time_point> since, std::optional<std::size_t> tail);

}  // namespace baetyl::master
