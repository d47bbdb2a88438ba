#pragma once
// Zips written exactly as told, entry names and Unix modes included, by Python's zipfile (not by
// the library the agent reads them with): what a hostile or broken cloud could send (entries with
// "..", absolute paths, links out, devices).
#include <filesystem>
#include <string>
#include <vector>

namespace baetyl::agent::testing {

struct ZipEntry {
  enum class Kind { file, directory, symlink, special };
  std::string name;
  Kind kind = Kind::file;
  std::string content;   // file: the data; symlink: the target
  unsigned mode = 0644;  // permission bits; for `special` the whole st_mode (S_IFIFO | 0644, ...)

  static ZipEntry file(std::string name, std::string content, unsigned mode = 0644) {
    return {std::move(name), Kind::file, std::move(content), mode};
  }
  static ZipEntry directory(std::string name) {
    return {std::move(name), Kind::directory, "", 0755};
  }
  static ZipEntry symlink(std::string name, std::string target) {
    return {std::move(name), Kind::symlink, std::move(target), 0777};
  }
  // An entry whose Unix mode says FIFO, device or socket.
  static ZipEntry special(std::string name, unsigned st_mode) {
    return {std::move(name), Kind::special, "", st_mode};
  }
};

// Writes the entries, in order, into a new zip at `path` (deflated). Throws std::runtime_error.
void write_zip(const std::filesystem::path& path, const std::vector<ZipEntry>& entries);

}  // namespace baetyl::agent::testing
