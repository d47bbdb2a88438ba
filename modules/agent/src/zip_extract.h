#pragma once
// Unpacks a volume's zip with libarchive, refusing what could reach outside the directory it is
// unpacked into: entries with an absolute path or a ".." component, symbolic links that point
// outside (an absolute target, or more leading ".." than the link is deep, or a ".." after a
// name, which could climb out through another link), hard links (zip has none), devices, FIFOs
// and sockets (libarchive reads a FIFO's zip entry as a plain file). No entry is written through a
// symbolic link: a link in the way of a later entry is replaced by a directory. The total unpacked
// size and the number of entries are bounded (a zip bomb).
#include <cstdint>
#include <filesystem>
#include <stdexcept>

namespace baetyl::agent {

struct ExtractLimits {
  std::uint64_t max_bytes = 1ULL << 30;  // the content of every file together
  std::uint64_t max_entries = 65536;
};

class ExtractError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Unpacks `zip` into `dir`, an existing empty directory. File modes keep their permission bits
// (set-id and sticky bits dropped; the owner may always read and write). Throws ExtractError
// naming the entry and the reason; `dir` then holds what was unpacked so far.
void extract_zip(const std::filesystem::path& zip, const std::filesystem::path& dir,
                 const ExtractLimits& limits);

// The problem of a symbolic link at `entry` (a relative entry path) pointing to `target`, or
// empty when the link stays inside the directory of the archive.
std::string check_link_target(const std::string& entry, const std::string& target);

}  // namespace baetyl::agent
