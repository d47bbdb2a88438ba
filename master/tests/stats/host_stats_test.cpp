#include "stats/host_stats.h"

#include <signal.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"

namespace baetyl::master {
namespace {

using namespace std::chrono_literals;
using testing::Process;
using testing::TempDir;

std::uint64_t meminfo_bytes(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  std::uint64_t value = 0;
  std::string unit;
  while (in >> name >> value) {
    if (name == key + ":") return value * 1024;
    std::getline(in, unit);
  }
  ADD_FAILURE() << key << " not in /proc/meminfo";
  return 0;
}

// VmRSS of /proc/<pid>/status in bytes.
std::uint64_t vm_rss(pid_t pid) {
  const long kib = baetyl::testing::status_kib(pid);
  return kib < 0 ? 0 : static_cast<std::uint64_t>(kib) * 1024;
}

// Field 22 of /proc/<pid>/stat, counted independently of the code under test.
std::uint64_t stat_field_22(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) rest >> field;
  return std::stoull(field);
}

// utime + stime (fields 14 and 15 of /proc/<pid>/stat).
std::uint64_t cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  std::uint64_t used = 0;
  for (int i = 3; i <= 15; ++i) {
    rest >> field;
    if (i >= 14) used += std::stoull(field);
  }
  return used;
}

double uptime() {
  std::ifstream in("/proc/uptime");
  double seconds = 0;
  in >> seconds;
  return seconds;
}

// Waits (bounded) until the child has used at least `ticks` clock ticks of CPU.
void wait_for_cpu(pid_t pid, std::uint64_t ticks) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cpu_ticks(pid) >= ticks) return;
    std::this_thread::sleep_for(10ms);
  }
  FAIL() << "the busy child never got CPU time";
}

// Waits (bounded) until the child runs the program whose command name is `comm`.
bool wait_for_comm(pid_t pid, const std::string& comm) {
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string line;
    std::getline(in, line);
    if (line == comm) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

class ScopedPath {
 public:
  explicit ScopedPath(const std::string& value) {
    if (const char* old = std::getenv("PATH")) old_ = old;
    ::setenv("PATH", value.c_str(), 1);
  }
  ~ScopedPath() { ::setenv("PATH", old_.c_str(), 1); }

 private:
  std::string old_;
};

TEST(HostStats, MemoryMatchesMeminfo) {
  HostStats stats("/");
  auto hw = stats.collect();
  ASSERT_TRUE(hw.mem_stats);
  EXPECT_EQ(hw.mem_stats->total, meminfo_bytes("MemTotal"));
  EXPECT_EQ(hw.mem_stats->used + hw.mem_stats->free, hw.mem_stats->total);
  EXPECT_GT(hw.mem_stats->used, 0u);
  EXPECT_NEAR(hw.mem_stats->used_percent,
              100.0 * static_cast<double>(hw.mem_stats->used) / hw.mem_stats->total, 1e-9);
  EXPECT_EQ(hw.mem_stats->swap_total, meminfo_bytes("SwapTotal"));
  EXPECT_EQ(hw.mem_stats->swap_used + hw.mem_stats->swap_free, hw.mem_stats->swap_total);
}

TEST(HostStats, DiskOfTheGivenPath) {
  TempDir dir;
  HostStats stats(dir.path().string());
  auto hw = stats.collect();
  ASSERT_TRUE(hw.disk_stats);
  EXPECT_EQ(hw.disk_stats->path, dir.path().string());
  struct statvfs fs {};
  ASSERT_EQ(::statvfs(dir.path().c_str(), &fs), 0);
  EXPECT_EQ(hw.disk_stats->total, static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize);
  EXPECT_GT(hw.disk_stats->total, 0u);
  EXPECT_GE(hw.disk_stats->used_percent, 0);
  EXPECT_LE(hw.disk_stats->used_percent, 100);

  HostStats missing(dir.path().string() + "/does-not-exist");
  EXPECT_FALSE(missing.collect().disk_stats);
}

TEST(HostStats, CpuSeesABusyChild) {
  Process busy({"/bin/sh", "-c", "while :; do :; done"});
  wait_for_cpu(busy.pid(), 5);
  HostStats stats("/");  // the first window starts here
  std::this_thread::sleep_for(400ms);
  auto first = stats.collect();
  ASSERT_TRUE(first.cpu_stats);
  std::this_thread::sleep_for(400ms);
  auto second = stats.collect();  // since the first call
  ASSERT_TRUE(second.cpu_stats);
  // One core of the host is spinning, so at least about 1/ncpu of the total is busy.
  double floor = 100.0 / static_cast<double>(std::thread::hardware_concurrency()) * 0.6;
  EXPECT_GT(first.cpu_stats->used_percent, floor);
  EXPECT_GT(second.cpu_stats->used_percent, floor);
  EXPECT_LE(second.cpu_stats->used_percent, 100.0);
}

TEST(HostStats, CallsInQuickSuccessionNeverWaitAndRepeatTheLastWindow) {
  HostStats stats("/");
  std::this_thread::sleep_for(400ms);
  auto begin = std::chrono::steady_clock::now();
  auto first = stats.collect();
  auto second = stats.collect();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 50ms);
  ASSERT_TRUE(first.cpu_stats && second.cpu_stats);
  EXPECT_DOUBLE_EQ(first.cpu_stats->used_percent, second.cpu_stats->used_percent);
}

TEST(HostStats, NoGpuWithoutNvidiaSmi) {
  TempDir empty;
  ScopedPath path(empty.path().string());
  HostStats stats("/");
  EXPECT_TRUE(stats.collect().gpu_stats.empty());
}

TEST(HostStats, GpuFromNvidiaSmi) {
  TempDir bin;
  auto script = bin.write("nvidia-smi",
                          "#!/bin/sh\n"
                          "case \"$*\" in *--query-gpu=index,name,memory.total,memory.free*) ;; "
                          "*) exit 1;; esac\n"
                          "echo '0, Tesla T4, 15109, 15000'\n"
                          "echo '1, GeForce GTX 1080, 8192, 2048'\n");
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  ScopedPath path(bin.path().string() + ":/usr/bin:/bin");
  HostStats stats("/");
  auto gpus = stats.collect().gpu_stats;
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_EQ(gpus[0]["id"], "0");
  EXPECT_EQ(gpus[0]["model"], "Tesla T4");
  EXPECT_EQ(gpus[1]["model"], "GeForce GTX 1080");
  EXPECT_EQ(gpus[1]["mem_stats"]["total"], 8192ull * 1024 * 1024);
  EXPECT_EQ(gpus[1]["mem_stats"]["free"], 2048ull * 1024 * 1024);
  EXPECT_EQ(gpus[1]["mem_stats"]["used"], 6144ull * 1024 * 1024);
  EXPECT_DOUBLE_EQ(gpus[1]["mem_stats"]["used_percent"].get<double>(), 75.0);
}

// The machine may be shared, so the busy child's share is checked against its own tick counts
// over the same interval rather than against a fixed figure.
TEST(ProcessStats, BusyChildMatchesItsTicks) {
  Process busy({"/bin/sh", "-c", "while :; do :; done"});
  wait_for_cpu(busy.pid(), 10);
  const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  ProcessStats stats(busy.pid());

  auto first = stats.collect();  // since the process started
  std::uint64_t ticks0 = cpu_ticks(busy.pid());
  double since_start = uptime() - static_cast<double>(stat_field_22(busy.pid())) / hz;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(first.is_object()) << first;
  EXPECT_NEAR(first["cpu_stats"]["used_percent"].get<double>(),
              100.0 * static_cast<double>(ticks0) / hz / since_start, 10);

  EXPECT_EQ(stats.collect(), first) << "within kRefresh the last reading is returned";
  std::this_thread::sleep_for(kRefresh + 100ms);
  auto second = stats.collect();  // since the first call
  std::uint64_t ticks1 = cpu_ticks(busy.pid());
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double expected = 100.0 * static_cast<double>(ticks1 - ticks0) / hz / elapsed;
  EXPECT_GT(second["cpu_stats"]["used_percent"].get<double>(), 0);
  EXPECT_NEAR(second["cpu_stats"]["used_percent"].get<double>(), expected, 10);
  EXPECT_LT(second["cpu_stats"]["used_percent"].get<double>(), 110);
}

TEST(ProcessStats, IdleChildAndMemory) {
  Process idle({"/bin/sleep", "30"});
  // Until exec replaced the forked test binary, RSS is not sleep's.
  ASSERT_TRUE(wait_for_comm(idle.pid(), "sleep"));
  ProcessStats stats(idle.pid());
  stats.collect();
  std::uint64_t ticks0 = cpu_ticks(idle.pid());
  auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(kRefresh + 50ms);
  auto json = stats.collect();
  std::uint64_t ticks1 = cpu_ticks(idle.pid());
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(json.is_object());
  // Sleeping costs nothing, but the dynamic loader may still have been at work after the exec.
  EXPECT_NEAR(json["cpu_stats"]["used_percent"].get<double>(),
              100.0 * static_cast<double>(ticks1 - ticks0) / ::sysconf(_SC_CLK_TCK) / elapsed, 6);
  auto total = json["mem_stats"]["total"].get<std::uint64_t>();
  auto used = json["mem_stats"]["used"].get<std::uint64_t>();
  EXPECT_EQ(total, meminfo_bytes("MemTotal"));
  auto rss = vm_rss(idle.pid());
  EXPECT_GT(used, 0u);
  // RSS may move by a page or two between the two reads.
  EXPECT_NEAR(static_cast<double>(used), static_cast<double>(rss), 64 * 1024);
  EXPECT_NEAR(json["mem_stats"]["used_percent"].get<double>(),
              100.0 * static_cast<double>(used) / static_cast<double>(total), 1e-9);
}

TEST(ProcessStats, StartTicksSurviveOddCommandNames) {
  TempDir dir;
  auto odd = dir.path() / "x) (y z";
  std::filesystem::copy_file("/bin/sleep", odd);
  std::filesystem::permissions(odd, std::filesystem::perms::owner_all);
  Process child({odd.string(), "30"});
  ASSERT_TRUE(wait_for_comm(child.pid(), "x) (y z"));
  auto ticks = ProcessStats::start_ticks(child.pid());
  ASSERT_TRUE(ticks);
  EXPECT_EQ(*ticks, stat_field_22(child.pid()));
  auto self = ProcessStats::start_ticks(::getpid());
  ASSERT_TRUE(self);
  EXPECT_LE(*self, *ticks);
  EXPECT_TRUE(ProcessStats(child.pid()).collect().is_object());
}

TEST(ProcessStats, ZombieAndGoneProcess) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(0);
  // A zombie still has its start time but no figures.
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, pid, &info, WEXITED | WNOWAIT), 0);
  EXPECT_TRUE(ProcessStats::start_ticks(pid));
  EXPECT_TRUE(ProcessStats(pid).collect().is_null());
  ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);
  EXPECT_FALSE(ProcessStats::start_ticks(pid));
  EXPECT_TRUE(ProcessStats(pid).collect().is_null());
}

}  // namespace
}  // namespace baetyl::master
