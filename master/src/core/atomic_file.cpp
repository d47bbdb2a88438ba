#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace baetyl::master {

namespace fs = std::filesystem;

void write_file_atomically(const fs::path& file, const std::string& text, unsigned mode) {
  fs::path temp = file;
  temp += ".tmp";
  auto fail = [&](const fs::path& path, const std::string& reason) {
    throw std::runtime_error("cannot write " + path.string() + ": " + reason);
  };
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  if (ec) fail(file, ec.message());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) fail(temp, strerror(errno));
  std::string problem;
  if (::fchmod(fd, mode) != 0) problem = strerror(errno);
  for (std::size_t done = 0; problem.empty() && done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) problem = strerror(errno);
    if (n > 0) done += static_cast<std::size_t>(n);
  }
  if (problem.empty() && ::fsync(fd) != 0) problem = strerror(errno);
  ::close(fd);
  if (problem.empty()) {
    fs::rename(temp, file, ec);
    if (ec) problem = ec.message();
  }
  if (!problem.empty()) {
    fs::remove(temp, ec);
    fail(file, problem);
  }
}

FileReplacement::FileReplacement(fs::path file, const std::string& text) : file_(std::move(file)) {
  struct stat info {};
  if (::stat(file_.c_str(), &info) == 0) {
    std::ifstream in(file_, std::ios::binary);
    std::ostringstream previous;
    previous << in.rdbuf();
    if (!in || !S_ISREG(info.st_mode)) {
      throw std::runtime_error("cannot read " + file_.string() + " to keep it");
    }
    previous_ = previous.str();
    mode_ = info.st_mode & 07777;
    fs::path backup = file_;
    backup += ".old";
    write_file_atomically(backup, *previous_, mode_);
  } else if (errno != ENOENT) {
    throw std::runtime_error("cannot read " + file_.string() + ": " + strerror(errno));
  }
  write_file_atomically(file_, text, mode_);
}

void FileReplacement::restore() {
  if (previous_) {
    write_file_atomically(file_, *previous_, mode_);
    return;
  }
  std::error_code ec;
  fs::remove(file_, ec);
  if (ec) throw std::runtime_error("cannot remove " + file_.string() + ": " + ec.message());
}

}  // namespace baetyl::master
