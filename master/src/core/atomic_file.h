#pragma once
// Files that are either wholly old or wholly new: written to `<file>.tmp`, synced, renamed.
#include <filesystem>
#include <optional>
#include <string>

namespace baetyl::master {

// Writes `text` to `file` atomically with `mode`. Throws std::runtime_error naming the file; the
// previous `file` is then untouched.
void write_file_atomically(const std::filesystem::path& file, const std::string& text,
                           unsigned mode = 0644);

// An update's replacement of application.yml that can be undone. The constructor keeps the
// current file's text (in memory and as `<file>.old`) and writes the new text over it atomically;
// it throws std::runtime_error naming the file when it cannot, with `file` unchanged. restore()
// puts the previous text back (or removes `file` when there was none).
class FileReplacement {
 public:
  FileReplacement(std::filesystem::path file, const std::string& text);
  void restore();

 private:
  std::filesystem::path file_;
  std::optional<std::string> previous_;
  unsigned mode_ = 0644;
};

}  // namespace baetyl::master
