#include "core/update_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

namespace baetyl::master {

namespace fs = std::filesystem;

namespace {

// Keys are named in update errors, but a key is text of the file too: long ones are cut.
constexpr std::size_t kMaxShownKey = 64;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = other.release();
    }
    return *this;
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

[[noreturn]] void refuse(const std::string& requested, const std::string& why) {
  throw std::invalid_argument("update path '" + requested + "' " + why);
}

// Opens `relative` (no symlinks in it, as resolved) below `root` without following any link.
Fd open_beneath(const fs::path& root, const fs::path& relative, const std::string& requested) {
  Fd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dir.get() < 0) {
    refuse(requested, "cannot be read: cannot open " + root.string() + ": " + strerror(errno));
  }
  std::vector<std::string> parts;
  for (const auto& part : relative) parts.push_back(part.string());
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    Fd next(::openat(dir.get(), parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next.get() < 0) {
      refuse(requested, "cannot be opened: " + std::string(errno == ELOOP || errno == ENOTDIR
                                                               ? "it changed while it was opened"
                                                               : strerror(errno)));
    }
    dir = std::move(next);
  }
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below anyway).
  Fd file(::openat(dir.get(), parts.back().c_str(),
                   O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (file.get() < 0) {
    if (errno == ENOENT) refuse(requested, "does not exist");
    if (errno == ELOOP) refuse(requested, "cannot be opened: it changed while it was opened");
    refuse(requested, "cannot be opened: " + std::string(strerror(errno)));
  }
  return file;
}

std::string shown_key(const std::string& key) {
  if (key.size() <= kMaxShownKey) return key;
  return key.substr(0, kMaxShownKey) + "...";
}

// The reason of an issue without anything it quotes: reasons quote values between single quotes
// ("'x' is not one of: ...", "expected a map of keys, got 'text'"), and a YAML syntax error may
// quote characters after its colon.
std::string shown_reason(const std::string& message) {
  constexpr std::string_view kSyntax = "YAML syntax error";
  if (message.rfind(kSyntax, 0) == 0) return std::string(kSyntax);
  const auto quote = message.find('\'');
  if (quote == std::string::npos) return message;
  std::string before = message.substr(0, quote);
  while (!before.empty() && (before.back() == ' ' || before.back() == ':')) before.pop_back();
  if (before.size() >= 3 && before.compare(before.size() - 3, 3, "got") == 0) {
    return before + " something else (not shown)";
  }
  return "invalid value (not shown)";
}

}  // namespace

UpdateSource::UpdateSource(int fd, std::string requested, fs::path resolved)
    : fd_(fd), requested_(std::move(requested)), resolved_(std::move(resolved)) {}

UpdateSource::~UpdateSource() {
  if (fd_ >= 0) ::close(fd_);
}

UpdateSource::UpdateSource(UpdateSource&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      requested_(std::move(other.requested_)),
      resolved_(std::move(other.resolved_)) {}

UpdateSource& UpdateSource::operator=(UpdateSource&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    requested_ = std::move(other.requested_);
    resolved_ = std::move(other.resolved_);
  }
  return *this;
}

std::string UpdateSource::read_all(std::size_t limit) const {
  std::string text;
  char buffer[64 * 1024];
  off_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(fd_, buffer, sizeof(buffer), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) refuse(requested_, "cannot be read: " + std::string(strerror(errno)));
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    offset += n;
    if (text.size() > limit) {
      refuse(requested_, "is larger than " + std::to_string(limit) + " bytes");
    }
  }
  return text;
}

void UpdateSource::copy_to(const fs::path& target, unsigned mode) const {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error("cannot copy " + requested_ + " to " + target.string() + ": " + what);
  };
  Fd out(::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode));
  if (out.get() < 0) fail(strerror(errno));
  if (::fchmod(out.get(), mode) != 0) fail(strerror(errno));
  char buffer[64 * 1024];
  off_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(fd_, buffer, sizeof(buffer), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(strerror(errno));
    if (n == 0) break;
    for (ssize_t written = 0; written < n;) {
      ssize_t w = ::write(out.get(), buffer + written, static_cast<std::size_t>(n - written));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail(strerror(errno));
      written += w;
    }
    offset += n;
  }
  if (::fsync(out.get()) != 0) fail(strerror(errno));
}

UpdateSource open_update_source(const fs::path& workdir, const std::string& requested) {
  if (requested.empty()) throw std::invalid_argument("update path is required");
  if (requested.find('\0') != std::string::npos) {
    throw std::invalid_argument("update path must not contain a NUL character");
  }
  std::error_code ec;
  const fs::path update_dir = workdir / kUpdateDir;
  const fs::path root = fs::canonical(update_dir, ec);
  if (ec) {
    refuse(requested, "cannot be read: the update directory " + update_dir.string() +
                          " cannot be resolved: " + ec.message());
  }
  const fs::path given =
      fs::path(requested).is_absolute() ? fs::path(requested) : workdir / requested;
  const fs::path resolved = fs::weakly_canonical(given, ec);
  if (ec) refuse(requested, "cannot be resolved: " + ec.message());
  const fs::path relative = resolved.lexically_relative(root);
  if (relative.empty() || *relative.begin() == "..") {
    refuse(requested, "is outside " + root.string() + ": updates are read only from there");
  }
  if (relative == ".") refuse(requested, "is the update directory itself, not a file");

  Fd file = open_beneath(root, relative, requested);
  struct stat info {};
  if (::fstat(file.get(), &info) != 0) {
    refuse(requested, "cannot be read: " + std::string(strerror(errno)));
  }
  if (S_ISDIR(info.st_mode)) refuse(requested, "is a directory, not a file");
  if (!S_ISREG(info.st_mode)) refuse(requested, "is not a regular file");
  // A second name could be anywhere on the file system: the path says nothing about the file.
  if (info.st_nlink > 1) refuse(requested, "has more than one hard link");
  return UpdateSource(file.release(), requested, resolved);
}

std::string describe_update_error(const config::ConfigError& error) {
  std::string text;
  for (const auto& issue : error.issues()) {
    if (!text.empty()) text += '\n';
    text += error.source();
    if (!issue.key.empty()) text += ": " + shown_key(issue.key);
    text += ": " + shown_reason(issue.message);
  }
  return text;
}

}  // namespace baetyl::master
