#include "core/master_lock.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/testing/temp_dir.h"

namespace baetyl::master {
namespace {

namespace fs = std::filesystem;
using baetyl::testing::TempDir;

std::string lock_text(const fs::path& workdir) {
  std::ifstream in(workdir / kLockFile);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs `body` in a forked child and returns its exit code (the child inherits every descriptor,
// as a master started by another one would).
int in_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The descriptors of this process that refer to `file` (a child closes them to compete).
void close_descriptors_of(const fs::path& file) {
  for (int fd = 3; fd < 1024; ++fd) {
    char target[4096] = {};
    const auto link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
    if (n > 0 && fs::path(std::string(target, n)) == file) ::close(fd);
  }
}

TEST(MasterLock, HoldsTheWorkDirectoryWithItsPid) {
  TempDir dir;
  {
    MasterLock lock = MasterLock::acquire(dir.path());
    EXPECT_EQ(lock.origin(), MasterLock::Origin::kAcquired);
    EXPECT_EQ(lock_text(dir.path()), std::to_string(::getpid()) + "\n");
    const int code = in_child([&] {
      close_descriptors_of(dir.path() / kLockFile);
      try {
        MasterLock::acquire(dir.path());
        return 1;
      } catch (const std::runtime_error& e) {
        const std::string expected = "a master is already running in " + dir.path().string() +
                                     " (pid " + std::to_string(::getppid()) + ")";
        return e.what() == expected ? 0 : 2;
      }
    });
    EXPECT_EQ(code, 0) << "another process is refused, naming the holder";
  }
  // Released with its descriptor; the file stays.
  EXPECT_TRUE(fs::exists(dir.path() / kLockFile));
  EXPECT_EQ(in_child([&] {
              close_descriptors_of(dir.path() / kLockFile);
              return MasterLock::acquire(dir.path()).origin() == MasterLock::Origin::kAcquired ? 0
                                                                                               : 1;
            }),
            0);
}

TEST(MasterLock, ANewMasterWithTheDescriptorTakesTheLockOver) {
  TempDir dir;
  MasterLock lock = MasterLock::acquire(dir.path());
  const pid_t parent = ::getpid();
  const int code = in_child([&] {
    try {
      MasterLock taken = MasterLock::acquire(dir.path());
      if (taken.origin() != MasterLock::Origin::kHandedOver) return 1;
      if (taken.previous_holder() != parent) return 2;
      return 0;
    } catch (const std::exception&) {
      return 3;
    }
  });
  EXPECT_EQ(code, 0) << "handed over by a master that still runs";
  EXPECT_THAT(lock_text(dir.path()), ::testing::Not(std::to_string(parent) + "\n"))
      << "the new master's pid";
  // (The exec of a master, which keeps the descriptor in the same process, is the end-to-end
  // test ARestartInPlaceKeepsTheWorkDirectoryLocked.)
}

TEST(MasterLock, AHolderWhoseSuccessorEndedNamesItselfAgain) {
  TempDir dir;
  MasterLock lock = MasterLock::acquire(dir.path());
  char target[4096] = {};
  const auto link = "/proc/self/fd/" + std::to_string(lock.descriptor());
  const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
  EXPECT_EQ(fs::path(std::string(target, n > 0 ? n : 0)), dir.path() / kLockFile);

  const int code = in_child([&] {
    MasterLock taken = MasterLock::acquire(dir.path());
    return taken.origin() == MasterLock::Origin::kHandedOver ? 0 : 1;
  });
  EXPECT_EQ(code, 0);
  const std::string text = lock_text(dir.path());
  ASSERT_FALSE(text.empty());
  EXPECT_NE(std::stoi(text), ::getpid()) << "the successor wrote its pid";
  lock.write_pid();
  EXPECT_EQ(lock_text(dir.path()), std::to_string(::getpid()) + "\n");
  // Still held: the successor's exit closed its descriptor only.
  EXPECT_EQ(in_child([&] {
              close_descriptors_of(dir.path() / kLockFile);
              try {
                MasterLock::acquire(dir.path());
                return 1;
              } catch (const std::runtime_error&) {
                return 0;
              }
            }),
            0);
}

TEST(MasterLock, ItsDescriptorIsClosedOnExecUnlessKept) {
  TempDir dir;
  MasterLock lock = MasterLock::acquire(dir.path());
  auto close_on_exec = [&] {
    for (int fd = 3; fd < 1024; ++fd) {
      char target[4096] = {};
      const auto link = "/proc/self/fd/" + std::to_string(fd);
      const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
      if (n > 0 && fs::path(std::string(target, n)) == dir.path() / kLockFile) {
        return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
      }
    }
    ADD_FAILURE() << "no descriptor of the lock file";
    return false;
  };
  EXPECT_TRUE(close_on_exec());
  lock.keep_across_exec();
  EXPECT_FALSE(close_on_exec());
}

}  // namespace
}  // namespace baetyl::master
