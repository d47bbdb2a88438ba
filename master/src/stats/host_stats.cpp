#include "stats/host_stats.h"

#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

namespace baetyl::master {
namespace {

// Jiffies summed over all CPUs (100 per second per CPU) that make a CPU share worth reporting.
constexpr std::uint64_t kMinCpuWindowTicks = 50;

double percent(double part, double whole) { return whole > 0 ? part * 100.0 / whole : 0; }

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// /proc/meminfo as key -> bytes (the values are in kB).
std::map<std::string, std::uint64_t> read_meminfo() {
  std::map<std::string, std::uint64_t> values;
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream rest(line.substr(colon + 1));
    std::uint64_t value = 0;
    std::string unit;
    if (!(rest >> value)) continue;
    rest >> unit;
    values[line.substr(0, colon)] = unit == "kB" ? value * 1024 : value;
  }
  return values;
}

// MemTotal only changes with memory hotplug: read it once a minute at most.
std::uint64_t host_memory_total() {
  static std::mutex mutex;
  static std::uint64_t total = 0;
  static std::chrono::steady_clock::time_point read_at{};
  std::lock_guard lock(mutex);
  auto now = std::chrono::steady_clock::now();
  if (total == 0 || now - read_at > std::chrono::minutes(1)) {
    auto info = read_meminfo();
    auto it = info.find("MemTotal");
    total = it == info.end() ? 0 : it->second;
    read_at = now;
  }
  return total;
}

struct CpuTimes {
  std::uint64_t busy = 0;
  std::uint64_t total = 0;
};

// The aggregate "cpu" line of /proc/stat: user nice system idle iowait irq softirq steal (guest
// time is already counted in user and nice).
std::optional<CpuTimes> read_cpu_times() {
  std::ifstream in("/proc/stat");
  std::string label;
  if (!(in >> label) || label != "cpu") return std::nullopt;
  std::uint64_t fields[8] = {};
  for (auto& field : fields) {
    if (!(in >> field)) return std::nullopt;
  }
  CpuTimes times;
  for (auto field : fields) times.total += field;
  times.busy = times.total - fields[3] - fields[4];
  return times;
}

std::optional<std::string> find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path) return std::nullopt;
  std::istringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    auto candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(candidate)) {
      return candidate;
    }
  }
  return std::nullopt;
}

std::string trim(std::string_view text) {
  auto begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  auto end = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(begin, end - begin + 1));
}

// One entry per GPU, as the original reported them: {"id","model","mem_stats":{...}}.
std::vector<nlohmann::json> read_gpu_stats() {
  auto program = find_on_path("nvidia-smi");
  if (!program || program->find('\'') != std::string::npos) return {};
  std::string command = "'" + *program +
                        "' --query-gpu=index,name,memory.total,memory.free "
                        "--format=csv,noheader,nounits 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return {};
  std::string output;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  int status = ::pclose(pipe);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return {};

  std::vector<nlohmann::json> gpus;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> fields;
    std::istringstream parts(line);
    std::string part;
    while (std::getline(parts, part, ',')) fields.push_back(trim(part));
    if (fields.size() != 4) continue;
    constexpr double kMiB = 1024.0 * 1024.0;
    double total = std::strtod(fields[2].c_str(), nullptr) * kMiB;
    double free = std::strtod(fields[3].c_str(), nullptr) * kMiB;
    api::MemStats mem;
    mem.total = static_cast<std::uint64_t>(total);
    mem.free = static_cast<std::uint64_t>(free);
    mem.used = mem.total > mem.free ? mem.total - mem.free : 0;
    mem.used_percent = percent(static_cast<double>(mem.used), static_cast<double>(mem.total));
    gpus.push_back({{"id", fields[0]}, {"model", fields[1]}, {"mem_stats", mem}});
  }
  return gpus;
}

struct ProcStat {
  char state = '?';
  std::uint64_t cpu_ticks = 0;  // utime + stime
  std::uint64_t start_ticks = 0;
  std::int64_t rss_pages = 0;
};

// /proc/<pid>/stat; the command name (field 2) may hold spaces and parentheses, so the fields are
// counted from the last ')'.
std::optional<ProcStat> read_proc_stat(pid_t pid) {
  auto text = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return std::nullopt;
  auto close = text->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(text->substr(close + 1));
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  std::string field;
  while (in >> field && fields.size() < 22) fields.push_back(field);
  if (fields.size() < 22) return std::nullopt;
  ProcStat stat;
  stat.state = fields[0].empty() ? '?' : fields[0][0];
  stat.cpu_ticks = std::stoull(fields[11]) + std::stoull(fields[12]);  // fields 14, 15
  stat.start_ticks = std::stoull(fields[19]);                          // field 22
  stat.rss_pages = std::stoll(fields[21]);                             // field 24
  return stat;
}

// Resident pages from /proc/<pid>/statm, which sums the per-CPU counters that the rss field of
// /proc/<pid>/stat only approximates.
std::optional<std::int64_t> resident_pages(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/statm");
  std::int64_t size = 0;
  std::int64_t resident = 0;
  if (!(in >> size >> resident)) return std::nullopt;
  return resident;
}

std::optional<double> uptime_seconds() {
  std::ifstream in("/proc/uptime");
  double uptime = 0;
  if (!(in >> uptime)) return std::nullopt;
  return uptime;
}

}  // namespace

HostStats::HostStats(std::string disk_path) : disk_path_(std::move(disk_path)) {
  // The first collect() measures from here, so it never has to wait for a sample.
  if (auto now = read_cpu_times()) {
    last_busy_ = now->busy;
    last_total_ = now->total;
  }
}

api::Hardware HostStats::collect() {
  {
    std::lock_guard lock(mutex_);
    if (last_hardware_ && std::chrono::steady_clock::now() - last_collected_ < kRefresh) {
      return *last_hardware_;
    }
  }
  api::Hardware hardware;

  auto info = read_meminfo();
  if (info.count("MemTotal")) {
    api::MemStats mem;
    mem.total = info["MemTotal"];
    // MemAvailable counts reclaimable caches as free; kernels before 3.14 lack it.
    mem.free = info.count("MemAvailable") ? info["MemAvailable"]
                                          : info["MemFree"] + info["Buffers"] + info["Cached"];
    mem.used = mem.total > mem.free ? mem.total - mem.free : 0;
    mem.used_percent = percent(static_cast<double>(mem.used), static_cast<double>(mem.total));
    mem.swap_total = info["SwapTotal"];
    mem.swap_free = info["SwapFree"];
    mem.swap_used = mem.swap_total > mem.swap_free ? mem.swap_total - mem.swap_free : 0;
    mem.swap_used_percent =
        percent(static_cast<double>(mem.swap_used), static_cast<double>(mem.swap_total));
    hardware.mem_stats = mem;
  }

  {
    std::lock_guard lock(mutex_);
    if (auto now = read_cpu_times()) {
      std::uint64_t busy = now->busy >= last_busy_ ? now->busy - last_busy_ : 0;
      std::uint64_t total = now->total >= last_total_ ? now->total - last_total_ : 0;
      // Calls a few milliseconds apart see a tick or two: report the last full window then.
      if (total >= kMinCpuWindowTicks || (!last_cpu_percent_ && total > 0)) {
        last_cpu_percent_ = percent(static_cast<double>(busy), static_cast<double>(total));
        if (total >= kMinCpuWindowTicks) {
          last_busy_ = now->busy;
          last_total_ = now->total;
        }
      }
      api::CpuStats cpu;
      cpu.used_percent = last_cpu_percent_.value_or(0);
      hardware.cpu_stats = cpu;
    }
  }

  struct statvfs fs {};
  if (!disk_path_.empty() && ::statvfs(disk_path_.c_str(), &fs) == 0) {
    api::DiskStats disk;
    disk.path = disk_path_;
    disk.total = static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize;
    disk.free = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
    disk.used = static_cast<std::uint64_t>(fs.f_blocks - fs.f_bfree) * fs.f_frsize;
    // Like df: the share of what unprivileged users can use.
    disk.used_percent =
        percent(static_cast<double>(disk.used), static_cast<double>(disk.used + disk.free));
    hardware.disk_stats = disk;
  }

  hardware.gpu_stats = read_gpu_stats();
  std::lock_guard lock(mutex_);
  last_hardware_ = hardware;
  last_collected_ = std::chrono::steady_clock::now();
  return hardware;
}

ProcessStats::ProcessStats(pid_t pid) : pid_(pid) {}

nlohmann::json ProcessStats::collect() {
  std::lock_guard lock(mutex_);
  auto now = std::chrono::steady_clock::now();
  if (sampled_ && now - last_time_ < kRefresh) return last_result_;
  auto stat = read_proc_stat(pid_);
  if (!stat || stat->state == 'Z' || stat->state == 'X') return last_result_ = nullptr;
  static const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  static const long page_size = ::sysconf(_SC_PAGESIZE);

  double cpu_seconds = 0;
  double elapsed_seconds = 0;
  if (sampled_) {
    cpu_seconds =
        static_cast<double>(stat->cpu_ticks - std::min(stat->cpu_ticks, last_cpu_ticks_)) /
        static_cast<double>(ticks_per_second);
    elapsed_seconds = std::chrono::duration<double>(now - last_time_).count();
  } else {
    cpu_seconds = static_cast<double>(stat->cpu_ticks) / static_cast<double>(ticks_per_second);
    if (auto uptime = uptime_seconds()) {
      elapsed_seconds =
          *uptime - static_cast<double>(stat->start_ticks) / static_cast<double>(ticks_per_second);
    }
  }
  last_cpu_ticks_ = stat->cpu_ticks;
  last_time_ = now;
  sampled_ = true;

  std::uint64_t total = host_memory_total();
  std::int64_t pages = resident_pages(pid_).value_or(stat->rss_pages);
  std::uint64_t used = static_cast<std::uint64_t>(std::max<std::int64_t>(pages, 0)) *
                       static_cast<std::uint64_t>(page_size);
  return last_result_ = {
             {"cpu_stats", {{"used_percent", percent(cpu_seconds, elapsed_seconds)}}},
             {"mem_stats",
              {{"total", total},
               {"used", used},
               {"used_percent", percent(static_cast<double>(used), static_cast<double>(total))}}},
         };
}

std::optional<std::uint64_t> ProcessStats::start_ticks(pid_t pid) {
  auto stat = read_proc_stat(pid);
  if (!stat) return std::nullopt;
  return stat->start_ticks;
}

}  // namespace baetyl::master
