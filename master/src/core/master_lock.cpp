#include "core/master_lock.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

namespace baetyl::master {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  throw std::runtime_error("cannot lock " + file.string() + ": " + what + ": " +
                           std::strerror(errno));
}

pid_t read_pid(int fd) {
  char text[32] = {};
  const ssize_t n = ::pread(fd, text, sizeof(text) - 1, 0);
  if (n <= 0) return 0;
  pid_t pid = 0;
  auto [end, error] = std::from_chars(text, text + n, pid);
  return error == std::errc() && pid > 0 ? pid : 0;
}

bool write_own_pid(int fd) {
  const std::string text = std::to_string(::getpid()) + "\n";
  return ::ftruncate(fd, 0) == 0 &&
         ::pwrite(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size());
}

bool alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// A descriptor of this process (left open by the image that exec'ed it, or inherited from the
// parent) that refers to `file`; -1 when there is none.
int inherited_descriptor(const fs::path& file) {
  struct stat wanted {};
  if (::stat(file.c_str(), &wanted) != 0) return -1;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* entry = ::readdir(dir)) {
    int fd = -1;
    const std::string_view name(entry->d_name);
    auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), fd);
    if (error != std::errc() || end != name.data() + name.size() || fd <= STDERR_FILENO ||
        fd == ::dirfd(dir)) {
      continue;
    }
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_dev == wanted.st_dev && st.st_ino == wanted.st_ino) {
      found = fd;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

}  // namespace

MasterLock MasterLock::acquire(const fs::path& workdir) {
  const fs::path file = workdir / kLockFile;
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  if (ec) {
    throw std::runtime_error("cannot lock " + file.string() +
                             ": cannot create its directory: " + ec.message());
  }

  int fd = inherited_descriptor(file);
  const bool inherited = fd >= 0;
  if (inherited) {
    if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) fail(file, "fcntl");
  } else {
    fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) fail(file, "open");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      const int error = errno;
      ::close(fd);
      errno = error;
      fail(file, "flock");
    }
    // The holder writes its pid right after locking: give it a moment.
    pid_t holder = read_pid(fd);
    for (int i = 0; i < 20 && holder == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      holder = read_pid(fd);
    }
    ::close(fd);
    throw std::runtime_error("a master is already running in " + workdir.string() + " (pid " +
                             (holder > 0 ? std::to_string(holder) : "unknown") + ")");
  }

  Origin origin = Origin::kAcquired;
  pid_t previous = 0;
  if (inherited) {
    previous = read_pid(fd);
    if (previous == ::getpid()) {
      origin = Origin::kInherited;
    } else if (alive(previous)) {
      origin = Origin::kHandedOver;
    } else {
      previous = 0;  // its holder is gone: as good as free
    }
  }
  if (!write_own_pid(fd)) {
    const int error = errno;
    ::close(fd);
    errno = error;
    fail(file, "cannot write the pid");
  }
  return MasterLock(fd, origin, previous);
}

MasterLock::MasterLock(int fd, Origin origin, pid_t previous_holder)
    : fd_(fd), origin_(origin), previous_holder_(previous_holder) {}

MasterLock::MasterLock(MasterLock&& other) noexcept
    : fd_(other.fd_), origin_(other.origin_), previous_holder_(other.previous_holder_) {
  other.fd_ = -1;
}

MasterLock::~MasterLock() {
  // close, never LOCK_UN: a master it was handed over to shares the lock and keeps it.
  if (fd_ >= 0) ::close(fd_);
}

void MasterLock::keep_across_exec() const {
  if (fd_ >= 0) ::fcntl(fd_, F_SETFD, 0);
}

void MasterLock::write_pid() const {
  if (fd_ >= 0 && !write_own_pid(fd_)) {
    throw std::runtime_error(std::string("cannot write the pid into ") + kLockFile + ": " +
                             std::strerror(errno));
  }
}

}  // namespace baetyl::master
