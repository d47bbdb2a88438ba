#pragma once
// Zips written with libarchive exactly as told, entry names included: what a hostile or broken
// cloud could send (entries with "..", absolute paths, links out, devices).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace baetyl::agent::testing {

struct ZipEntry {
  enum class Kind { file, directory, symlink };
  std::string name;
  Kind kind = Kind::file;
  std::string content;  // file: the data; symlink: the target
  int mode = 0644;

  static ZipEntry file(std::string name, std::string content, int mode = 0644) {
    return {std::move(name), Kind::file, std::move(content), mode};
  }
  static ZipEntry directory(std::string name) { return {std::move(name), Kind::directory, "", 0755}; }
  static ZipEntry symlink(std::string name, std::string target) {
    return {std::move(name), Kind::symlink, std::move(target), 0777};
  }
};

// Writes the entries, in order, into a new zip at `path`. Throws std::runtime_error.
void write_zip(const std::filesystem::path& path, const std::vector<ZipEntry>& entries);

// A zip of one entry whose Unix mode is `mode` whatever its type (S_IFIFO, S_IFCHR...), which
// libarchive will not write: made with Python's zipfile. Throws std::runtime_error.
void write_zip_with_mode(const std::filesystem::path& path, const std::string& name,
                         unsigned mode);

}  // namespace baetyl::agent::testing
