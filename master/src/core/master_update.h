#pragma once
// A master binary update across the exec into the new binary. The old master checks the new
// binary (`<new> check`), keeps itself as bin/baetyl.old, installs the new one, writes this marker
// and execs it. The new master counts its start attempts in the marker: when it starts all
// services it logs RESTARTED and UPDATED; when it fails to start, or a previous attempt died before
// finishing, the old binary is put back and exec'ed, which then logs ROLLEDBACK.
#include <filesystem>
#include <optional>
#include <string>

namespace baetyl::master {

struct MasterUpdateMarker {
  std::string trace;
  std::string stage;  // "restarting": the new binary is starting; "rollingback": the old is back
  int attempts = 0;   // starts of the new binary so far
  std::filesystem::path binary;  // the installed binary
  std::filesystem::path backup;  // the previous one, bin/baetyl.old
  std::string error;             // why it rolled back

  static std::optional<MasterUpdateMarker> load(const std::filesystem::path& file);
  void save(const std::filesystem::path& file) const;  // atomically (temp file + rename)
  static void remove(const std::filesystem::path& file);
};

// Installs `source` at `target` atomically, keeping the old `target` at `backup`. Throws
// std::runtime_error naming the files.
void install_binary(const std::filesystem::path& source, const std::filesystem::path& target,
                    const std::filesystem::path& backup);
// Puts `backup` back at `target`.
void restore_binary(const std::filesystem::path& backup, const std::filesystem::path& target);

// Runs `<binary> check -w <workdir>` and returns "" when it printed OK! and exited 0, else what
// went wrong with its output. Gives up after `timeout`.
std::string check_master_binary(const std::filesystem::path& binary,
                                const std::filesystem::path& workdir,
                                std::chrono::milliseconds timeout);

}  // namespace baetyl::master
