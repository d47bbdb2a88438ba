#include "core/cli_ops.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

// <utility> before Boost.Asio: Boost 1.74 with g++ 12 in C++20 needs it.
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include "core/master.h"
#include "engine/docker_client.h"
#include "engine/docker_container.h"

namespace baetyl::master {

namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using nlohmann::json;

namespace {

constexpr std::chrono::milliseconds kFollowInterval{200};
// How long `baetyl stop` waits for the master to exit: its grace is 30 s by default, and each
// service gets it in turn only when one ignores SIGTERM.
constexpr std::chrono::minutes kStopTimeout{10};
// Time prefixes of instance log lines: "2026-12-07T00:52:33.123Z ".
constexpr std::size_t kTimePrefixLength = 24;

// The master's answer to a call it refused: status and body.
class MasterRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Admin {
  fs::path file;
  std::string address;
  std::string username;
  std::string password;
  pid_t pid = 0;
};

// The running master's admin.json; throws naming the file and why no master can be reached.
Admin read_admin(const fs::path& workdir) {
  Admin admin;
  admin.file = workdir / kAdminFile;
  std::ifstream in(admin.file);
  if (!in) {
    const int error = errno;
    throw std::runtime_error("cannot read " + admin.file.string() + ": " + std::strerror(error) +
                             (error == EACCES
                                  ? " (it is readable by root only)"
                                  : " (is the master running in " + workdir.string() + "?)"));
  }
  json document = json::parse(in, nullptr, false);
  if (document.is_discarded() || !document.is_object()) {
    throw std::runtime_error(admin.file.string() + " is not valid JSON");
  }
  admin.address = document.value("address", "");
  admin.username = document.value("username", "");
  admin.password = document.value("password", "");
  admin.pid = document.value("pid", 0);
  return admin;
}

template <class Stream>
std::string exchange(Stream& stream, http::verb verb, const std::string& target,
                     const Admin& admin) {
  http::request<http::string_body> request{verb, target, 11};
  request.set(http::field::host, "baetyl");
  request.set("x-openedge-username", admin.username);
  request.set("x-openedge-password", admin.password);
  if (verb == http::verb::put) request.body() = "";
  request.prepare_payload();
  http::write(stream, request);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(stream, buffer, response);
  if (response.result() != http::status::ok) {
    throw MasterRefused("the master answered " + std::to_string(response.result_int()) + ": " +
                        response.body());
  }
  return response.body();
}

// One call of the master API with the admin credentials; the body of a 200 answer.
std::string call_master(const Admin& admin, http::verb verb, const std::string& target) {
  asio::io_context io;
  const std::string& address = admin.address;
  if (address.rfind("unix://", 0) == 0) {
    asio::local::stream_protocol::socket socket(io);
    boost::system::error_code ec;
    socket.connect(asio::local::stream_protocol::endpoint(address.substr(7)), ec);
    if (ec) {
      throw std::runtime_error("cannot connect to " + address + ": " + ec.message() +
                               " (is the master of " + admin.file.string() + " still running?)");
    }
    return exchange(socket, verb, target, admin);
  }
  if (address.rfind("tcp://", 0) == 0) {
    std::string host_port = address.substr(6);
    auto colon = host_port.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("bad API address " + address);
    asio::ip::tcp::resolver resolver(io);
    asio::ip::tcp::socket socket(io);
    asio::connect(socket,
                  resolver.resolve(host_port.substr(0, colon), host_port.substr(colon + 1)));
    return exchange(socket, verb, target, admin);
  }
  throw std::runtime_error("unsupported API address '" + address + "' in " + admin.file.string());
}

json inspect_master(const Admin& admin) {
  json document =
      json::parse(call_master(admin, http::verb::get, "/v1/system/inspect"), nullptr, false);
  if (!document.is_object()) throw std::runtime_error("the master's inspect is not a JSON object");
  return document;
}

// "2026-12-07T00:52:33.123456Z" -> the time (UTC, fraction ignored); nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parse_utc(const std::string& text) {
  std::tm tm{};
  if (text.size() < 20 ||
      std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

// The time prefix of instance log lines for `time`: "2026-12-07T00:52:33.123Z".
std::string log_time(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  const auto seconds = floor<std::chrono::seconds>(time);
  const auto millis = duration_cast<milliseconds>(time - seconds).count();
  const std::time_t t = system_clock::to_time_t(seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[40];
  std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(text + n, sizeof text - n, ".%03lldZ", static_cast<long long>(millis));
  return text;
}

std::string format_duration_short(std::int64_t seconds) {
  if (seconds < 60) return std::to_string(seconds) + "s";
  if (seconds < 3600)
    return std::to_string(seconds / 60) + "m" + std::to_string(seconds % 60) + "s";
  if (seconds < 86400) {
    return std::to_string(seconds / 3600) + "h" + std::to_string(seconds / 60 % 60) + "m";
  }
  return std::to_string(seconds / 86400) + "d" + std::to_string(seconds / 3600 % 24) + "h";
}

std::string format_bytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f%s" : "%.1f%s", bytes, kUnits[unit]);
  return text;
}

std::string cell(const json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

// ---- logs ----

// Reads what `fd` holds from its position on and writes it to stdout; returns the bytes read.
std::size_t copy_rest(int fd) {
  char buffer[16 * 1024];
  std::size_t total = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::cout.write(buffer, n);
    total += static_cast<std::size_t>(n);
  }
  std::cout.flush();
  return total;
}

// Follows <dir>/<instance>.log from its end (as `tail -F` does): across rotations, and until the
// process is ended by a signal.
[[noreturn]] void follow_file(const fs::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) ::lseek(fd, 0, SEEK_END);
  for (;;) {
    if (fd >= 0) copy_rest(fd);
    std::this_thread::sleep_for(kFollowInterval);
    struct stat now {};
    struct stat opened {};
    if (::stat(file.c_str(), &now) != 0) continue;  // between a rotation's rename and reopen
    if (fd >= 0 && ::fstat(fd, &opened) == 0 && opened.st_ino == now.st_ino &&
        opened.st_dev == now.st_dev && now.st_size >= ::lseek(fd, 0, SEEK_CUR)) {
      continue;
    }
    // Rotated (renamed away, or truncated): what the old file got last, then the new one.
    if (fd >= 0) {
      copy_rest(fd);
      ::close(fd);
    }
    fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  }
}

// Which instance `logs SERVICE [INSTANCE]` means, checked against the master's inspect.
std::string choose_instance(const json& inspect, const std::string& service,
                            const std::optional<std::string>& instance) {
  const json listed_services = inspect.value("services", json::array());
  const json* entry = nullptr;
  std::string services;
  for (const auto& candidate : listed_services) {
    const std::string name = candidate.value("name", "");
    services += (services.empty() ? "" : ", ") + name;
    if (name == service) entry = &candidate;
  }
  if (!entry) {
    throw std::runtime_error("service '" + service + "' not found (services: " +
                             (services.empty() ? "none" : services) + ")");
  }
  std::vector<std::string> names;
  for (const auto& candidate : entry->value("instances", json::array())) {
    names.push_back(candidate.value("name", ""));
  }
  std::string listed;
  for (const auto& name : names) listed += (listed.empty() ? "" : ", ") + name;
  if (instance) {
    if (std::find(names.begin(), names.end(), *instance) == names.end()) {
      throw std::runtime_error("service '" + service + "' has no instance '" + *instance +
                               "' (instances: " + (listed.empty() ? "none" : listed) + ")");
    }
    return *instance;
  }
  if (std::find(names.begin(), names.end(), service) != names.end()) return service;
  if (names.size() == 1) return names.front();
  if (names.empty()) {
    throw std::runtime_error("service '" + service +
                             "' has no instance (a service with replica 0 runs instances only "
                             "when they are started, and an instance is listed once it started)");
  }
  throw std::runtime_error("service '" + service + "' runs " + std::to_string(names.size()) +
                           " instances (" + (listed.empty() ? "none" : listed) +
                           "): name the one to show");
}

int native_logs(const OpsArguments& args, const std::string& instance) {
  const fs::path dir = args.workdir / kServiceLogDir;
  const auto files = instance_log_files(dir, instance);
  if (files.empty() && !args.follow) {
    throw std::runtime_error("no log file of instance '" + instance + "' in " + dir.string());
  }
  std::optional<std::chrono::system_clock::time_point> since;
  if (args.since) {
    since = std::chrono::system_clock::now() -
            std::chrono::duration_cast<std::chrono::system_clock::duration>(*args.since);
  }
  for (const auto& line : select_log_lines(files, since, args.tail)) std::cout << line << "\n";
  std::cout.flush();
  if (args.follow) follow_file(dir / (instance + ".log"));
  return 0;
}

// Docker's "2026-12-07T00:52:33.1234567Z line" as "2026-12-07T00:52:33.123Z line" (the format of
// native mode's files); `stamp` gets Docker's own time text, to resume from.
std::string normalize_docker_line(const std::string& line, std::string& stamp) {
  const auto space = line.find(' ');
  if (space == std::string::npos || space < 20 || line[space - 1] != 'Z') return line;
  stamp = line.substr(0, space);
  std::string fraction;
  if (const auto dot = stamp.find('.'); dot != std::string::npos) {
    fraction = stamp.substr(dot + 1, stamp.size() - dot - 2);
  }
  fraction = (fraction + "000").substr(0, 3);
  return stamp.substr(0, 19) + "." + fraction + "Z" + line.substr(space);
}

// A Docker time text with its fraction padded to 9 digits, so that two compare as strings.
std::string comparable_stamp(const std::string& stamp) {
  if (stamp.size() < 20) return stamp;
  std::string fraction;
  if (const auto dot = stamp.find('.'); dot != std::string::npos) {
    fraction = stamp.substr(dot + 1, stamp.size() - dot - 2);
  }
  return stamp.substr(0, 19) + "." + (fraction + "000000000").substr(0, 9) + "Z";
}

int docker_logs(const OpsArguments& args, const std::string& instance) {
  const char* host = std::getenv("DOCKER_HOST");
  DockerClient client(host && *host ? host : kDefaultDockerHost);
  std::optional<std::string> version;
  if (const char* forced = std::getenv("DOCKER_API_VERSION"); forced && *forced) version = forced;
  client.set_api_version(negotiate_api_version(
      client.call_json("GET", "/version", std::nullopt, std::chrono::seconds(10)), version));
  std::string query =
      "/containers/" + url_encode(instance) + "/logs?stdout=1&stderr=1&timestamps=1";
  if (args.tail) query += "&tail=" + std::to_string(*args.tail);
  if (args.since) {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::system_clock::now().time_since_epoch() - *args.since);
    query += "&since=" + std::to_string(seconds.count());
  }
  std::string last;  // the newest time printed, comparable_stamp
  auto print = [&](const std::string& path) {
    const auto response = client.call("GET", path, std::nullopt, std::chrono::seconds(30));
    if (!response.ok()) {
      throw std::runtime_error("docker logs of container '" + instance +
                               "': " + std::to_string(response.status) + ": " + response.message());
    }
    std::istringstream text(demultiplex_logs(response.body));
    std::string line;
    while (std::getline(text, line)) {
      std::string stamp;
      std::string shown = normalize_docker_line(line, stamp);
      if (!stamp.empty()) {
        const std::string key = comparable_stamp(stamp);
        if (!last.empty() && key <= last) continue;  // printed by the previous poll
        last = key;
      }
      std::cout << shown << "\n";
    }
    std::cout.flush();
  };
  print(query);
  if (!args.follow) return 0;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    // Docker's since takes seconds: ask again from the last second printed and skip what was.
    std::string path =
        "/containers/" + url_encode(instance) + "/logs?stdout=1&stderr=1&timestamps=1";
    if (!last.empty()) {
      if (auto time = parse_utc(last)) {
        path += "&since=" + std::to_string(std::chrono::system_clock::to_time_t(*time));
      }
    }
    print(path);
  }
}

bool pid_alive(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  std::getline(stat, text);
  const auto close = text.rfind(')');
  return !text.empty() &&
         (close == std::string::npos || text.size() < close + 3 || text[close + 2] != 'Z');
}

}  // namespace

// ---- shared pieces, public for the tests ----

json list_rows(const json& inspect, std::chrono::system_clock::time_point now) {
  json rows = json::array();
  for (const auto& service : inspect.value("services", json::array())) {
    for (const auto& instance : service.value("instances", json::array())) {
      json row = {{"service", service.value("name", "")},
                  {"instance", instance.value("name", "")},
                  {"status", instance.value("status", "")},
                  {"restarts", instance.value("restart_count", 0)},
                  {"uptime", nullptr},
                  {"pid", nullptr},
                  {"container", nullptr},
                  {"cpu", nullptr},
                  {"memory", nullptr},
                  {"image", service.value("image", "")}};
      const bool running = row["status"] == "running";
      if (running) {
        if (auto started = parse_utc(instance.value("start_time", ""))) {
          row["uptime"] = std::max<std::int64_t>(
              0, std::chrono::duration_cast<std::chrono::seconds>(now - *started).count());
        }
      }
      if (running && instance.contains("process")) {
        row["pid"] = instance["process"].value("id", 0);
      }
      if (running && instance.contains("container")) {
        row["container"] = instance["container"].value("id", "").substr(0, 12);
      }
      if (const auto cpu = instance.find("cpu_stats"); cpu != instance.end() && cpu->is_object()) {
        if (cpu->contains("used_percent")) row["cpu"] = (*cpu)["used_percent"];
      }
      if (const auto mem = instance.find("mem_stats"); mem != instance.end() && mem->is_object()) {
        if (mem->contains("used")) row["memory"] = (*mem)["used"];
      }
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

std::string format_table(const json& rows) {
  const std::vector<std::string> header = {"SERVICE",  "INSTANCE", "STATUS",
                                           "RESTARTS", "UPTIME",   "PID/CONTAINER",
                                           "CPU",      "MEMORY",   "IMAGE"};
  std::vector<std::vector<std::string>> table = {header};
  for (const auto& row : rows) {
    std::string uptime = row["uptime"].is_number() ? format_duration_short(row["uptime"]) : "-";
    std::string where = row["pid"].is_number()         ? std::to_string(row["pid"].get<long>())
                        : row["container"].is_string() ? row["container"].get<std::string>()
                                                       : "-";
    std::string cpu = "-";
    if (row["cpu"].is_number()) {
      char text[32];
      std::snprintf(text, sizeof text, "%.1f%%", row["cpu"].get<double>());
      cpu = text;
    }
    std::string memory =
        row["memory"].is_number() ? format_bytes(row["memory"].get<double>()) : "-";
    table.push_back({cell(row["service"]), cell(row["instance"]), cell(row["status"]),
                     cell(row["restarts"]), uptime, where, cpu, memory, cell(row["image"])});
  }
  std::vector<std::size_t> widths(header.size(), 0);
  for (const auto& line : table) {
    for (std::size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], line[i].size());
  }
  std::string out;
  for (const auto& line : table) {
    std::string text;
    for (std::size_t i = 0; i < line.size(); ++i) {
      text += line[i];
      if (i + 1 < line.size()) text += std::string(widths[i] - line[i].size() + 2, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  }
  return out;
}

std::vector<fs::path> instance_log_files(const fs::path& dir, const std::string& instance) {
  std::map<int, fs::path, std::greater<>> rotated;
  std::error_code ec;
  const std::string prefix = instance + ".";
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(prefix) || !name.ends_with(".log")) continue;
    const std::string index = name.substr(prefix.size(), name.size() - prefix.size() - 4);
    if (index.empty() || index.size() > 6 ||
        !std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    rotated.emplace(std::stoi(index), entry.path());
  }
  std::vector<fs::path> files;
  for (auto& [index, path] : rotated) files.push_back(path);
  if (fs::exists(dir / (instance + ".log"), ec)) files.push_back(dir / (instance + ".log"));
  return files;
}

std::vector<std::string> select_log_lines(
    const std::vector<fs::path>& files, std::optional<std::chrono::system_clock::time_point> since,
    std::optional<std::size_t> tail) {
  const std::string cutoff = since ? log_time(*since) : "";
  std::deque<std::string> lines;
  for (const auto& file : files) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      // Lines carry their time as a fixed-width UTC prefix, which compares as text.
      if (since && line.compare(0, cutoff.size(), cutoff) < 0) continue;
      lines.push_back(std::move(line));
      if (tail && lines.size() > *tail) lines.pop_front();
    }
  }
  return {lines.begin(), lines.end()};
}

// ---- commands ----

int run_inspect(const OpsArguments& args) {
  const Admin admin = read_admin(args.workdir);
  std::string body = call_master(admin, http::verb::get, "/v1/system/inspect");
  auto document = json::parse(body, nullptr, false);
  std::cout << (document.is_discarded() ? body : document.dump(2)) << "\n";
  return 0;
}

int run_list(const OpsArguments& args) {
  const json rows =
      list_rows(inspect_master(read_admin(args.workdir)), std::chrono::system_clock::now());
  if (args.json) {
    std::cout << rows.dump(2) << "\n";
  } else {
    std::cout << format_table(rows);
  }
  return 0;
}

int run_logs(const OpsArguments& args) {
  const std::string& service = args.operands.at(0);
  std::optional<std::string> instance;
  if (args.operands.size() > 1) instance = args.operands[1];
  std::optional<Admin> admin;
  try {
    admin = read_admin(args.workdir);
  } catch (const std::exception&) {
    // Without a master the files of native mode are still there to read.
    const std::string name = instance.value_or(service);
    if (instance_log_files(args.workdir / kServiceLogDir, name).empty()) throw;
    return native_logs(args, name);
  }
  const json inspect = inspect_master(*admin);
  const std::string name = choose_instance(inspect, service, instance);
  const std::string mode = inspect.value("software", json::object()).value("mode", "");
  if (mode == "docker") return docker_logs(args, name);
  return native_logs(args, name);
}

int run_restart(const OpsArguments& args) {
  const std::string& service = args.operands.at(0);
  const Admin admin = read_admin(args.workdir);
  json before;
  for (const auto& row : list_rows(inspect_master(admin), std::chrono::system_clock::now())) {
    if (row["service"] == service) before[row["instance"].get<std::string>()] = row;
  }
  json restarted = json::parse(
      call_master(admin, http::verb::put, "/v1/services/" + url_encode(service) + "/restart"),
      nullptr, false);
  if (!restarted.is_array()) throw std::runtime_error("the master's answer is not a JSON array");
  bool ok = true;
  for (const auto& entry : restarted) {
    const std::string name = entry.value("name", "");
    const std::string status = entry.value("status", "");
    std::string was = "-";
    if (before.contains(name))
      was = cell(before[name]["pid"].is_null() ? before[name]["container"] : before[name]["pid"]);
    std::string now = "-";
    if (entry.contains("process")) now = cell(entry["process"].value("id", json()));
    if (entry.contains("container")) now = entry["container"].value("id", "").substr(0, 12);
    if (status == "running") {
      std::cout << "restarted " << name << ": " << was << " -> " << now << "\n";
    } else {
      ok = false;
      std::cerr << "baetyl restart: instance " << name << " is " << status
                << (entry.contains("error") ? ": " + entry.value("error", "") : "")
                << (entry.contains("last_exit") ? " (" + entry.value("last_exit", "") + ")" : "")
                << "\n";
    }
  }
  return ok ? 0 : 1;
}

int run_stop(const OpsArguments& args) {
  const Admin admin = read_admin(args.workdir);
  if (admin.pid <= 0) {
    throw std::runtime_error(admin.file.string() + " names no pid: that master is older than " +
                             "`baetyl stop`; send it SIGTERM");
  }
  try {
    call_master(admin, http::verb::put, "/v1/system/stop");
  } catch (const MasterRefused&) {
    throw;
  } catch (const std::exception& e) {
    // The master may close the connection as it stops: what counts is that it ends.
    if (!pid_alive(admin.pid)) {
      std::cout << "master (pid " << admin.pid << ") stopped\n";
      return 0;
    }
    if (std::string(e.what()).find("cannot connect") != std::string::npos) throw;
  }
  const auto deadline = std::chrono::steady_clock::now() + kStopTimeout;
  while (pid_alive(admin.pid)) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("the master (pid " + std::to_string(admin.pid) + ") still runs " +
                               std::to_string(kStopTimeout.count()) +
                               " minutes after it was asked to stop");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::cout << "master (pid " << admin.pid << ") stopped\n";
  return 0;
}

}  // namespace baetyl::master
