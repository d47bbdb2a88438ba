#pragma once
// One master per work directory: `baetyl start` holds an exclusive flock on
// var/run/baetyl/baetyl.lock (which holds its pid) from before it touches anything until it
// exits. The lock belongs to the open file description, so it is released when the process
// ends, however it ends, and the file itself is never removed (removing it would let a second
// master lock a new file while the first still holds the old one).
//
// The descriptor is close-on-exec, so no program the master runs holds the lock. Before the
// master execs a new image of itself (SIGUSR2, or the update waiter of a master update) it calls
// keep_across_exec(); the new image then finds the still-locked descriptor among its own and
// takes it over (MasterLock::acquire). A master started as a child of the holder with the
// descriptor inherited (the update waiter's child) takes it over the same way: both hold the
// lock until both closed it, so it is never free between them.
#include <sys/types.h>

#include <filesystem>
#include <string>

namespace baetyl::master {

inline constexpr const char* kLockFile = "var/run/baetyl/baetyl.lock";

class MasterLock {
 public:
  enum class Origin {
    kAcquired,    // the lock was free: no master runs in the work directory any more
    kInherited,   // taken over from an earlier image of this process (exec)
    kHandedOver,  // taken over from another master that still runs (its parent)
  };

  // Takes the lock of `workdir` (absolute), or throws std::runtime_error: "a master is already
  // running in <workdir> (pid N)" when another master holds it, or why the file cannot be
  // locked. Writes this process's pid into the file.
  static MasterLock acquire(const std::filesystem::path& workdir);

  MasterLock(MasterLock&& other) noexcept;
  MasterLock& operator=(MasterLock&&) = delete;
  MasterLock(const MasterLock&) = delete;
  ~MasterLock();  // releases the lock (a no-op for the other holder of a handed-over lock)

  Origin origin() const { return origin_; }
  // The master that held the lock before, for kInherited and kHandedOver; 0 otherwise.
  pid_t previous_holder() const { return previous_holder_; }

  // Clears close-on-exec on the lock's descriptor, right before an exec of the master (or in a
  // forked child, right before it execs the master it hands over to).
  void keep_across_exec() const;
  // The lock's descriptor, for a process that closes every other one.
  int descriptor() const { return fd_; }
  // Writes this process's pid into the file again: the holder that handed the lock over to a
  // master that has ended (the update waiter) names itself until the next one takes over.
  void write_pid() const;

 private:
  MasterLock(int fd, Origin origin, pid_t previous_holder);

  int fd_ = -1;
  Origin origin_ = Origin::kAcquired;
  pid_t previous_holder_ = 0;
};

}  // namespace baetyl::master
