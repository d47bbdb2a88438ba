#pragma once
// Low-level process helpers of the native engine: spawning, pidfds and reading /proc.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace baetyl::master {

// `base` (an environ-style array, may be null) with `overrides` applied in order: a later entry
// replaces an earlier one of the same name, in place; new names are appended.
std::vector<std::string> merge_environment(const char* const* base, const EnvList& overrides);

// Starts `program` (an absolute path, not searched on PATH) with `argv` and exactly `env`, in
// `cwd`, as the leader of a new process group, with an empty signal mask, every signal at its
// default disposition, stdin/stdout/stderr inherited (stdout and stderr both on `output_fd` when it
// is not -1) and every other descriptor closed. Failing to change directory or to exec is
// reported here (glibc's posix_spawn waits for the exec), never as a child that exits 127. Throws
// std::system_error.
pid_t spawn_process(const std::filesystem::path& program, const std::vector<std::string>& argv,
                    const std::vector<std::string>& env, const std::filesystem::path& cwd,
                    int output_fd = -1);

// A pidfd for `pid` (close-on-exec), or -1 when the kernel has none (before Linux 5.3).
int open_pidfd(pid_t pid);

struct ProcInfo {
  char state = '?';  // 'Z' for a zombie
  pid_t pgrp = 0;
  std::uint64_t start_ticks = 0;
};
// Fields 3, 5 and 22 of /proc/<pid>/stat; nullopt when there is no such process.
std::optional<ProcInfo> read_proc_info(pid_t pid);

// Every pid in /proc.
std::vector<pid_t> list_pids();

}  // namespace baetyl::master
