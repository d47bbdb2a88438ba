#pragma once
// A master binary update. The running master copies the new binary from the update directory to
// bin/baetyl.new, runs `bin/baetyl.new check`, keeps itself as bin/baetyl.old, installs the new
// one as bin/baetyl and writes this marker. It then stops its services and hands over to the
// update waiter (update_waiter.h), which starts the new binary and puts the old one back unless
// the new master reports healthy in time: a master that starts every service with the marker in
// stage "restarting" logs RESTARTED and UPDATED and removes the marker (that is the report); one
// that starts with it in stage "rollingback" is the old binary put back, and logs ROLLEDBACK.
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace baetyl::master {

struct MasterUpdateMarker {
  std::string trace;
  std::string stage;  // "restarting": the new binary is starting; "rollingback": the old is back
  std::filesystem::path binary;  // the installed binary
  std::filesystem::path backup;  // the previous one, bin/baetyl.old
  // How long the new master has to start every service, and to stop when it did not.
  std::chrono::milliseconds timeout{std::chrono::minutes(2)};
  std::chrono::milliseconds grace{std::chrono::seconds(30)};
  std::string error;  // why it rolled back

  static std::optional<MasterUpdateMarker> load(const std::filesystem::path& file);
  void save(const std::filesystem::path& file) const;  // atomically (temp file + rename)
  static void remove(const std::filesystem::path& file);
};

// Installs the staged `staged` at `target` atomically, keeping a copy of the old `target` at
// `backup`. Throws std::runtime_error naming the files.
void install_binary(const std::filesystem::path& staged, const std::filesystem::path& target,
                    const std::filesystem::path& backup);
// Puts `backup` back at `target` (atomically).
void restore_binary(const std::filesystem::path& backup, const std::filesystem::path& target);

// Runs `<binary> check -w <workdir>` and returns "" when it printed OK! and exited 0, else what
// went wrong with (the end of) its output. Gives up after `timeout`.
std::string check_master_binary(const std::filesystem::path& binary,
                                const std::filesystem::path& workdir,
                                std::chrono::milliseconds timeout);

}  // namespace baetyl::master
