#pragma once
// The file an update names (`PUT /v1/system/update`), opened only inside the update directory
// (var/db/baetyl of the work directory), and update errors that never quote what a file holds.
#include <cstddef>
#include <filesystem>
#include <string>

#include "baetyl/config/reader.h"

namespace baetyl::master {

// Relative to the work directory; the only place updates are read from.
inline constexpr const char* kUpdateDir = "var/db/baetyl";
// An application file larger than this is refused (the example's is 3 KB).
inline constexpr std::size_t kMaxAppFileSize = 1 << 20;

// An open regular file inside the update directory. Move-only; closes its descriptor.
class UpdateSource {
 public:
  UpdateSource() = default;
  UpdateSource(int fd, std::string requested, std::filesystem::path resolved);
  ~UpdateSource();
  UpdateSource(UpdateSource&& other) noexcept;
  UpdateSource& operator=(UpdateSource&& other) noexcept;
  UpdateSource(const UpdateSource&) = delete;
  UpdateSource& operator=(const UpdateSource&) = delete;

  int fd() const { return fd_; }
  // The path as the request gave it: what errors name.
  const std::string& requested() const { return requested_; }
  // Absolute, symlinks resolved.
  const std::filesystem::path& resolved() const { return resolved_; }

  // The whole file; throws std::invalid_argument naming the path when it is larger than `limit`
  // or cannot be read.
  std::string read_all(std::size_t limit) const;
  // Copies the whole file to `target` (created with `mode`, replaced if present) and syncs it.
  // Throws std::runtime_error naming both files.
  void copy_to(const std::filesystem::path& target, unsigned mode) const;

 private:
  int fd_ = -1;
  std::string requested_;
  std::filesystem::path resolved_;
};

// Opens `requested` (relative to `workdir`, or absolute) for reading when, after every symlink, it
// is a regular file inside `workdir`/var/db/baetyl with no other hard link. The file is opened by
// walking the resolved path from a descriptor of that directory without following any link, so a
// path swapped for a link after the check cannot lead outside. Throws std::invalid_argument naming
// the path (and never saying what the file holds) when it is refused.
UpdateSource open_update_source(const std::filesystem::path& workdir, const std::string& requested);

// A configuration error of an update's file as inspect's `error` and ota.log may show it: the
// file, each key (shortened when long) or line and column, and the reason only when the reason
// quotes nothing from the file.
std::string describe_update_error(const config::ConfigError& error);

}  // namespace baetyl::master
