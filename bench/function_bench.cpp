// Function compute end to end: a real `baetyl start` with the hub, the function manager and one
// runtime service per language (SQL, Python, Node) on a temporary work directory, in native mode
// (processes of the build tree) or docker mode (containers of the module images). For every
// runtime: throughput hub -> manager -> runtime -> hub at QoS 0 and 1 with instance.max 1 and 4,
// latency at a fixed rate (QoS 1), and cold start of an instance (the first message to a function
// with no instance running, after the previous one was evicted). Publisher and subscriber are the
// SDK client (baetyl::mqtt::Client). Prints markdown.
//
//   baetyl-function-bench [--baetyl PATH] [--sql-messages 40000] [--py-messages 10000]
//                         [--node-messages 10000] [--window 100] [--rate 500] [--seconds 5]
//                         [--cold-runs 5] [--max 4] [--only sql,py,node] [--py-calls 0]
//                         [--node-calls 0] [--sql-calls 0]   (instance.calls of those functions;
//                         0: the default) [--qos 0,1]   (the throughput rows to run)
//                         [--mode native|docker] [--images DIR] [--hub published|host|direct]
//                         [--cpu-group NAME] [--cgroup-parent NAME] [--summary FILE]
//                         [--label NAME]
//
// Docker mode runs the images whose IDs scripts/build-images.sh wrote to DIR (default: images/
// next to bin/ of the baetyl binary) under service names carrying the bench's pid, on the
// master's `baetyl` network. --hub published: the hub's port is published on 127.0.0.1 and the
// clients connect to it (through Docker's userland proxy, docker-proxy, where the daemon runs
// one); host: the port is published on the host's own network address (the first IPv4 address
// of an interface that is up and neither loopback nor Docker's) and the clients connect to it
// there, as a device on the host's network does (Docker's NAT rule carries the connection, not
// docker-proxy); direct: to the hub container's address on the bridge network, as a client on
// another host of that network would. --cpu-group (native mode) runs the master and its services
// in a new CPU cgroup NAME of the default weight (a path below the cpu controller's root, e.g.
// docker/x beside Docker's containers with the cgroupfs driver), as Docker runs all containers
// in its cgroup `docker`: on a machine busy with other work, the CPU then goes to them as in
// docker mode (as one group against each other process, not each process against each).
// --cgroup-parent (docker mode) sets conf.yml's docker.cgroup_parent (empty: Docker's cgroup
// `docker`); without it the master's default holds.
// --summary appends one JSON line per throughput row and one per latency run, with the variant
// --label names (default: native, native-group, published, host or direct).
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "baetyl/http/client.h"
#include "baetyl/mqtt/client.h"
#include "baetyl/testing/docker.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"
#include "bench_mqtt.h"
#include "bench_support.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  std::string baetyl;
  long sql_messages = 40000;
  long py_messages = 10000;
  long node_messages = 10000;
  int window = 100;
  int rate = 500;
  int seconds = 5;
  int cold_runs = 5;
  int max = 4;
  std::string only = "sql,py,node";  // the runtimes to measure
  int py_calls = 0;
  int node_calls = 0;
  int sql_calls = 0;
  std::string qos = "0,1";  // the throughput rows to run
  std::string mode = "native";
  std::string images;           // docker mode: the directory of <module>.id files
  std::string hub = "published";  // docker mode: published (127.0.0.1:port), host or direct
  std::string publish_ip = "127.0.0.1";  // docker mode: where the hub's port is published
  std::string summary;          // a file to append a JSON line per throughput row to
  std::string cpu_group;        // native mode: the CPU cgroup to run the master in
  std::optional<std::string> cgroup_parent;  // docker mode: conf.yml docker.cgroup_parent
  std::string label;            // the variant in the summary
};

bool docker_mode(const Options& options) { return options.mode == "docker"; }

// The host's own address on its network: the first IPv4 address of an interface that is up and
// is neither loopback nor one of Docker's (docker0, br-*, veth*); empty when there is none.
std::string host_network_address() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {};
  std::string found;
  for (ifaddrs* entry = list; entry != nullptr && found.empty(); entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr || entry->ifa_addr->sa_family != AF_INET) continue;
    if (!(entry->ifa_flags & IFF_UP) || (entry->ifa_flags & IFF_LOOPBACK)) continue;
    const std::string name = entry->ifa_name;
    if (name.starts_with("docker") || name.starts_with("br-") || name.starts_with("veth")) continue;
    char text[INET_ADDRSTRLEN] = "";
    const auto* address = reinterpret_cast<const sockaddr_in*>(entry->ifa_addr);
    if (::inet_ntop(AF_INET, &address->sin_addr, text, sizeof text) != nullptr) found = text;
  }
  ::freeifaddrs(list);
  return found;
}

struct Runtime {
  std::string key;    // sql, py, node
  std::string label;  // shown in the report
  std::string service;
  long messages;
  double target;  // msg/s end to end; 0: none
};

using baetyl::bench::percentile;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// The integer after "key": in a JSON text (the runtimes may add spaces or reorder keys); -1 if none.
long field(const std::string& text, const char* key) {
  std::string quoted = std::string("\"") + key + "\"";
  auto at = text.find(quoted);
  if (at == std::string::npos) return -1;
  at = text.find(':', at + quoted.size());
  if (at == std::string::npos) return -1;
  ++at;
  while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) ++at;
  long value = 0;
  bool any = false;
  while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
    value = value * 10 + (text[at++] - '0');
    any = true;
  }
  return any ? value : -1;
}

class Workdir {
 public:
  Workdir(std::uint16_t port, const Options& options)
      : port_(port),
        prefix_(docker_mode(options) ? "fbench" + std::to_string(getpid()) + "-" : "") {
    const int max = options.max;
    const bool docker = docker_mode(options);
    const std::string auth = "  username: bench\n  password: bench\n";
    dir_.write("etc/baetyl/conf.yml", "mode: " + options.mode +
                                          "\ngrace: 10s\nserver:\n  address: unix://" +
                                          socket() +
                                          "\nlogger:\n  path: var/log/baetyl/baetyl.log\n  level: warn\n" +
                                          (options.cgroup_parent
                                               ? "docker:\n  cgroup_parent: \"" +
                                                     *options.cgroup_parent + "\"\n"
                                               : std::string()));
    // In its container the hub listens on every interface: the manager reaches it by name.
    const std::string listen =
        docker ? "0.0.0.0:1883" : "127.0.0.1:" + std::to_string(port);
    const std::string hub_address =
        docker ? name("localhub") + ":1883" : "127.0.0.1:" + std::to_string(port);
    dir_.write("var/db/baetyl/hub-conf/service.yml",
               "listen:\n  - tcp://" + listen +
                   "\nprincipals:\n  - username: bench\n    password: bench\n    permissions:\n"
                   "      - action: 'pub'\n        permit: ['#']\n      - action: 'sub'\n"
                   "        permit: ['#']\nsubscriptions:\n  - source: {topic: t/hub, qos: 1}\n"
                   "    target: {topic: o/hub}\nlogger:\n  path: var/log/baetyl/service.log\n  level: warn\n");
    std::string rules, functions;
    const char* services[][2] = {{"sql", "function-sql"}, {"py", "function-py"}, {"node", "function-node"}};
    for (auto& [key, service] : services) {
      for (std::string variant : {"1", "n", "cold"}) {
        std::string name = std::string(key) + variant;
        rules += "  - clientid: rule-" + name + "\n    subscribe: {topic: t/" + name +
                 ", qos: 1}\n    function: {name: " + name + "}\n    publish: {topic: o/" + name +
                 ", qos: 1}\n";
        functions += "  - name: " + name + "\n    service: " + this->name(service) +
                     "\n    instance:\n";
        int calls = std::string(key) == "py"     ? options.py_calls
                    : std::string(key) == "node" ? options.node_calls
                                                 : options.sql_calls;
        if (calls > 0) functions += "      calls: " + std::to_string(calls) + "\n";
        if (variant == "1") functions += "      min: 0\n      max: 1\n";
        if (variant == "n") functions += "      min: 0\n      max: " + std::to_string(max) + "\n";
        if (variant == "cold") {
          functions += "      min: 0\n      max: 1\n      idletime: 300ms\n      evicttime: 100ms\n";
        }
      }
    }
    dir_.write("var/db/baetyl/manager-conf/service.yml",
               "hub:\n  address: tcp://" + hub_address + "\n" + auth +
                   "rules:\n" + rules + "functions:\n" + functions +
                   "logger:\n  path: var/log/baetyl/service.log\n  level: warn\n");
    auto function_list = [](const std::string& key, const std::string& handler, bool code) {
      std::string text = "functions:\n";
      for (std::string variant : {"1", "n", "cold"}) {
        text += "  - name: " + key + variant + "\n    handler: '" + handler + "'\n";
        if (code) text += "    codedir: var/db/baetyl/code\n";
      }
      return text + "logger:\n  path: var/log/baetyl/service.log\n  level: warn\n";
    };
    dir_.write("var/db/baetyl/sql-conf/service.yml",
               function_list("sql", "select * where id < 1000000", false));
    dir_.write("var/db/baetyl/py-conf/service.yml", function_list("py", "echo.handler", true));
    dir_.write("var/db/baetyl/node-conf/service.yml", function_list("node", "echo.handler", true));
    dir_.write("var/db/baetyl/py-code/echo.py", "def handler(event, context):\n    return event\n");
    dir_.write("var/db/baetyl/node-code/echo.js",
               "exports.handler = (event, context, callback) => callback(null, event);\n");

    // Native mode runs the build tree's program of each image name; docker mode the images the
    // build tree's scripts/build-images.sh made.
    auto image = [&](const std::string& module) {
      return docker ? baetyl::bench::image_id(options.images, module) : "baetyl-" + module;
    };
    std::string app =
        "version: bench\nservices:\n"
        "  - name: " + name("localhub") + "\n    image: " + image("hub") +
        "\n    replica: 1\n" +
        (docker ? "    ports: ['" + options.publish_ip + ":" + std::to_string(port) + ":1883']\n"
                : "") +
        "    mounts:\n"
        "      - {name: hub-conf, path: etc/baetyl, readonly: true}\n"
        "  - name: " + name("function-manager") + "\n    image: " + image("function-manager") +
        "\n    replica: 1\n"
        "    mounts:\n      - {name: manager-conf, path: etc/baetyl, readonly: true}\n"
        "  - name: " + name("function-sql") + "\n    image: " + image("function-sql") +
        "\n    replica: 0\n    mounts:\n"
        "      - {name: sql-conf, path: etc/baetyl, readonly: true}\n"
        "  - name: " + name("function-py") + "\n    image: " + image("function-python") +
        "\n    replica: 0\n    mounts:\n"
        "      - {name: py-conf, path: etc/baetyl, readonly: true}\n"
        "      - {name: py-code, path: var/db/baetyl/code, readonly: true}\n"
        "  - name: " + name("function-node") + "\n    image: " + image("function-node") +
        "\n    replica: 0\n    mounts:\n"
        "      - {name: node-conf, path: etc/baetyl, readonly: true}\n"
        "      - {name: node-code, path: var/db/baetyl/code, readonly: true}\n"
        "volumes:\n";
    for (const char* volume : {"hub-conf", "manager-conf", "sql-conf", "py-conf", "py-code",
                               "node-conf", "node-code"}) {
      app += std::string("  - {name: ") + volume + ", path: var/db/baetyl/" + volume + "}\n";
    }
    dir_.write("var/db/baetyl/application.yml", app);
  }
  std::string socket() const { return (dir_.path() / "var/run/baetyl.sock").string(); }
  const fs::path& path() const { return dir_.path(); }
  // The name of the bench's service `service`: in docker mode it carries the bench's pid, since
  // instance names are container names, unique on the Docker host.
  std::string name(const std::string& service) const { return prefix_ + service; }

  baetyl::http::Headers admin_headers() const { return baetyl::bench::admin_headers(path()); }

 private:
  baetyl::testing::TempDir dir_;
  std::uint16_t port_;
  std::string prefix_;
};

// The subscriber: every output on o/#, counted per run (the payload carries run and id).
class Sink {
 public:
  void begin(long run, long messages) {
    std::lock_guard lock(mutex_);
    run_ = run;
    seen_.assign(static_cast<std::size_t>(messages), Clock::time_point{});
    unique_ = 0;
    last_ = Clock::now();
  }
  void on_message(const baetyl::mqtt::Message& message) {
    auto now = Clock::now();
    long run = field(message.publish.payload, "run");
    long id = field(message.publish.payload, "id");
    std::lock_guard lock(mutex_);
    if (run != run_ || id < 0 || static_cast<std::size_t>(id) >= seen_.size()) return;
    if (seen_[static_cast<std::size_t>(id)] == Clock::time_point{}) {
      seen_[static_cast<std::size_t>(id)] = now;
      ++unique_;
      last_ = now;
    }
  }
  long unique() const {
    std::lock_guard lock(mutex_);
    return unique_;
  }
  Clock::time_point last() const {
    std::lock_guard lock(mutex_);
    return last_;
  }
  Clock::time_point received(long id) const {
    std::lock_guard lock(mutex_);
    return seen_[static_cast<std::size_t>(id)];
  }

 private:
  mutable std::mutex mutex_;
  long run_ = -1;
  std::vector<Clock::time_point> seen_;
  long unique_ = 0;
  Clock::time_point last_;
};

// CPU seconds (utime + stime) of the processes of the run by component (hub, manager, runtimes,
// master; docker-proxy in docker mode), and of this process (bench clients); with the
// scheduler's figures of their threads: how often they were put on a CPU (each wake-up is one)
// and how long they waited runnable for one.
struct Cpu {
  double hub = 0, manager = 0, runtimes = 0, master = 0, bench = 0, proxy = 0;
  double total() const { return hub + manager + runtimes + master + bench + proxy; }
};

struct Sched {
  double slices = 0;  // times a thread of the component was put on a CPU
  double wait = 0;    // seconds its threads waited runnable
};

double cpu_seconds(const std::string& stat_path) {
  std::ifstream in(stat_path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string value;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> value; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(value);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The sum of /proc/<pid>/task/*/schedstat (nanoseconds on a CPU, nanoseconds waiting runnable,
// timeslices) over the process's threads.
Sched sched_of(const fs::path& proc) {
  Sched sched;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator(proc / "task", ec)) {
    std::ifstream in(task.path() / "schedstat");
    double run = 0, wait = 0, slices = 0;
    if (in >> run >> wait >> slices) {
      sched.wait += wait / 1e9;
      sched.slices += slices;
    }
  }
  return sched;
}

// The CPU seconds of each process of the run at one moment (by pid, with its component), and of
// this process.
struct CpuSnapshot {
  enum Component { Hub, Manager, Runtimes, Master, Proxy, Bench };
  struct Sample {
    Component component;
    double cpu = 0;
    Sched sched;
  };
  std::map<int, Sample> processes;
  double bench = 0;
  Sched bench_sched;
};

// What tells the processes of a run apart: the work directory (native mode: the master runs in
// it, each service in var/run/baetyl/services/<service>) or, in docker mode, the containers
// labelled with it (by the container ID in a process's cgroup) and the docker-proxy of the
// hub's published port.
struct RunProcesses {
  fs::path root;
  bool docker = false;
  std::string hub, manager;  // the service names
  std::uint16_t port = 0;    // docker mode: the hub's published port
};

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The 64-hex container ID in a process's cgroup path, "" for a host process: the last component
// of a path (below docker/, the cgroup parent the master gives, or systemd's docker-<id>.scope).
std::string container_id(const fs::path& proc) {
  std::istringstream lines(read_all(proc / "cgroup"));
  for (std::string line; std::getline(lines, line);) {
    std::string last = line.substr(line.rfind('/') + 1);
    if (last.starts_with("docker-")) last.erase(0, 7);
    if (last.ends_with(".scope")) last.erase(last.size() - 6);
    if (last.size() == 64 && std::all_of(last.begin(), last.end(), [](unsigned char c) {
          return std::isxdigit(c) != 0;
        })) {
      return last;
    }
  }
  return "";
}

// The service of each container of the run, by container ID.
std::map<std::string, std::string> services_by_container(const fs::path& root) {
  std::map<std::string, std::string> services;
  std::istringstream lines(baetyl::testing::docker_ok(
      {"ps", "--no-trunc", "--filter", "label=baetyl.workdir=" + root.string(), "--format",
       "{{.ID}} {{.Label \"service\"}}"}));
  for (std::string id, service; lines >> id >> service;) services[id] = service;
  return services;
}

bool is_proxy_of(const fs::path& proc, std::uint16_t port) {
  std::string args = read_all(proc / "cmdline");
  std::replace(args.begin(), args.end(), '\0', ' ');
  return args.find("docker-proxy") != std::string::npos &&
         args.find("-host-port " + std::to_string(port) + " ") != std::string::npos;
}

CpuSnapshot cpu_snapshot(const RunProcesses& run) {
  CpuSnapshot snapshot;
  const std::map<std::string, std::string> containers =
      run.docker ? services_by_container(run.root) : std::map<std::string, std::string>{};
  snapshot.bench = cpu_seconds("/proc/self/stat");
  snapshot.bench_sched = sched_of("/proc/self");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const auto name = entry.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    const int pid = std::stoi(name);
    if (pid == getpid()) continue;
    std::optional<CpuSnapshot::Component> component;
    auto cwd = fs::read_symlink(entry.path() / "cwd", ec);
    if (!ec && cwd == run.root) {
      component = CpuSnapshot::Master;
    } else if (run.docker) {
      const auto container = containers.find(container_id(entry.path()));
      if (container != containers.end()) {
        component = container->second == run.hub       ? CpuSnapshot::Hub
                    : container->second == run.manager ? CpuSnapshot::Manager
                                                       : CpuSnapshot::Runtimes;
      } else if (is_proxy_of(entry.path(), run.port)) {
        component = CpuSnapshot::Proxy;
      }
    } else if (!ec && cwd.string().rfind(run.root.string(), 0) == 0) {
      // argv[0] is the instance name and comm is cut at 15: the directory tells the service.
      const std::string relative = cwd.string().substr(run.root.string().size());
      component = relative.ends_with("/services/" + run.hub)       ? CpuSnapshot::Hub
                  : relative.ends_with("/services/" + run.manager) ? CpuSnapshot::Manager
                                                                   : CpuSnapshot::Runtimes;
    }
    if (component) {
      snapshot.processes[pid] = {*component, cpu_seconds((entry.path() / "stat").string()),
                                 sched_of(entry.path())};
    }
  }
  return snapshot;
}

// The CPU used between two snapshots by component: a process started meanwhile counts from its
// start; one that ended meanwhile (an evicted instance) is left out, its last CPU time unknown.
struct Used {
  Cpu cpu;
  std::map<CpuSnapshot::Component, Sched> sched;
};

Used operator-(const CpuSnapshot& after, const CpuSnapshot& before) {
  Used used;
  used.cpu.bench = after.bench - before.bench;
  used.sched[CpuSnapshot::Bench] = {after.bench_sched.slices - before.bench_sched.slices,
                                    after.bench_sched.wait - before.bench_sched.wait};
  for (const auto& [pid, sample] : after.processes) {
    auto earlier = before.processes.find(pid);
    const bool known = earlier != before.processes.end();
    const double cpu = sample.cpu - (known ? earlier->second.cpu : 0);
    Sched& sched = used.sched[sample.component];
    sched.slices += sample.sched.slices - (known ? earlier->second.sched.slices : 0);
    sched.wait += sample.sched.wait - (known ? earlier->second.sched.wait : 0);
    switch (sample.component) {
      case CpuSnapshot::Hub: used.cpu.hub += cpu; break;
      case CpuSnapshot::Manager: used.cpu.manager += cpu; break;
      case CpuSnapshot::Runtimes: used.cpu.runtimes += cpu; break;
      case CpuSnapshot::Master: used.cpu.master += cpu; break;
      case CpuSnapshot::Proxy: used.cpu.proxy += cpu; break;
      case CpuSnapshot::Bench: break;
    }
  }
  return used;
}

struct Throughput {
  std::string variant;
  int instances = 1;
  int qos = 0;
  long messages = 0;
  long received = 0;
  double seconds = 0;
  double rate = 0;
  Cpu cpu;
  std::map<CpuSnapshot::Component, Sched> sched;
};

class Bench {
 public:
  // `address`: the hub's, tcp://host:port.
  Bench(const Options& options, std::string address, RunProcesses run)
      : options_(options), address_(std::move(address)), run_processes_(std::move(run)) {}
  void stop_clients() {
    publisher_.reset();
    subscriber_.reset();
  }

  void start_clients() {
    baetyl::mqtt::ClientConfig sub;
    sub.address = address_;
    sub.username = sub.password = "bench";
    sub.client_id = "bench-sub";
    sub.clean_session = true;
    sub.subscriptions = {{"o/#", 1}};
    // The clients log to stderr: stdout is the report.
    auto logger = spdlog::stderr_logger_mt("bench-clients");
    logger->set_level(spdlog::level::warn);
    subscriber_ = std::make_unique<baetyl::mqtt::Client>(sub, logger);
    subscriber_->start({.on_message = [this](const auto& m) { sink_.on_message(m); }});
    auto pub = sub;
    pub.client_id = "bench-pub";
    pub.subscriptions.clear();
    pub.buffer_size = options_.window;
    publisher_ = std::make_unique<baetyl::mqtt::Client>(pub, logger);
    publisher_->start();
    if (!subscriber_->wait_connected(30s) || !publisher_->wait_connected(30s)) {
      throw std::runtime_error("bench clients did not connect to the hub");
    }
  }

  std::string payload(long run, long id) {
    return "{\"id\":" + std::to_string(id) + ",\"run\":" + std::to_string(run) +
           ",\"data\":\"baetyl function bench\"}";
  }

  // Publishes one QoS 1 message to `function` until its output comes (or the timeout passes);
  // returns the milliseconds from the last publish to the output, or -1.
  double probe(const std::string& function, std::chrono::milliseconds timeout, double resend_ms = 1000) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      long run = ++run_;
      sink_.begin(run, 1);
      auto sent = Clock::now();
      publisher_->publish("t/" + function, payload(run, 0), 1);
      while (Clock::now() < deadline && ms_since(sent) < resend_ms) {
        if (sink_.unique() == 1) {
          return std::chrono::duration<double, std::milli>(sink_.received(0) - sent).count();
        }
        std::this_thread::sleep_for(200us);
      }
    }
    return -1;
  }

  Throughput throughput(const std::string& function, int qos, long messages) {
    long run = ++run_;
    sink_.begin(run, messages);
    auto cpu_before = cpu_snapshot(run_processes_);
    auto begin = Clock::now();
    const std::string topic = "t/" + function;
    for (long id = 0; id < messages; ++id) publisher_->publish(topic, payload(run, id), qos);
    // QoS 1: wait for all or 10 s without progress; QoS 0: 2 s without progress ends the run.
    const auto quiet = qos == 1 ? 10s : 2s;
    for (;;) {
      if (sink_.unique() == messages) break;
      if (Clock::now() - std::max(sink_.last(), begin) > quiet) break;
      std::this_thread::sleep_for(1ms);
    }
    Throughput result;
    auto used = cpu_snapshot(run_processes_) - cpu_before;
    result.cpu = used.cpu;
    result.sched = std::move(used.sched);
    result.qos = qos;
    result.messages = messages;
    result.received = sink_.unique();
    result.seconds = std::chrono::duration<double>(sink_.last() - begin).count();
    result.rate = result.seconds > 0 ? static_cast<double>(result.received) / result.seconds : 0;
    return result;
  }

  std::vector<double> latency(const std::string& function, long& lost) {
    const long total = static_cast<long>(options_.rate) * options_.seconds;
    long run = ++run_;
    sink_.begin(run, total);
    std::vector<Clock::time_point> sent(static_cast<std::size_t>(total));
    const auto interval = std::chrono::nanoseconds(1'000'000'000 / options_.rate);
    auto next = Clock::now();
    for (long id = 0; id < total; ++id) {
      std::this_thread::sleep_until(next);
      next += interval;
      sent[static_cast<std::size_t>(id)] = Clock::now();
      publisher_->publish("t/" + function, payload(run, id), 1);
    }
    auto end = Clock::now();
    while (sink_.unique() < total && Clock::now() - end < 10s) std::this_thread::sleep_for(1ms);
    std::vector<double> latencies;
    for (long id = 0; id < total; ++id) {
      auto at = sink_.received(id);
      if (at == Clock::time_point{}) continue;
      latencies.push_back(
          std::chrono::duration<double, std::milli>(at - sent[static_cast<std::size_t>(id)]).count());
    }
    lost = total - static_cast<long>(latencies.size());
    return latencies;
  }

 private:
  const Options& options_;
  std::string address_;
  RunProcesses run_processes_;
  Sink sink_;
  long run_ = 0;
  std::unique_ptr<baetyl::mqtt::Client> subscriber_;
  std::unique_ptr<baetyl::mqtt::Client> publisher_;
};

// Instances of `service` whose name contains ".<function>." (running or starting).
int instances_of(const baetyl::http::Client& client, const baetyl::http::Headers& headers,
                 const std::string& service, const std::string& function) {
  auto response = client.get("/v1/system/inspect", headers);
  if (response.status != 200) return -1;
  auto inspect = nlohmann::json::parse(response.body, nullptr, false);
  if (inspect.is_discarded()) return -1;
  int count = 0;
  for (const auto& entry : inspect["services"]) {
    if (entry.value("name", "") != service) continue;
    for (const auto& instance : entry["instances"]) {
      if (instance.value("name", "").find("." + function + ".") != std::string::npos) ++count;
    }
  }
  return count;
}

const char* verdict(bool pass) { return pass ? "PASS" : "MISS"; }

// Docker mode adds the CPU of docker-proxy, which carries the clients' connections to the hub
// through its published port.
std::string throughput_header(bool docker) {
  return std::string("| instance.max | QoS | messages | received | lost | seconds | msg/s end "
                     "to end | target | CPU s: hub / manager / runtime / bench") +
         (docker ? " / docker-proxy" : "") +
         " | CPU µs per output |\n|---:|---:|---:|---:|---:|---:|---:|---|---|---:|\n";
}

std::string throughput_row(const Throughput& row, const std::string& instances, double target,
                           bool docker) {
  std::string verdict_text = "—";
  if (target > 0) {
    verdict_text = std::string(verdict(row.rate >= target && row.received == row.messages)) +
                   " (≥ " + std::to_string(static_cast<long>(target)) + ")";
  }
  char proxy[32] = "";
  if (docker) std::snprintf(proxy, sizeof proxy, " / %.2f", row.cpu.proxy);
  char line[512];
  std::snprintf(line, sizeof line,
                "| %s | %d | %ld | %ld | %ld | %.2f | %.0f | %s | %.2f / %.2f / %.2f / %.2f%s "
                "| %.0f |\n",
                instances.c_str(), row.qos, row.messages, row.received,
                row.messages - row.received, row.seconds, row.rate, verdict_text.c_str(),
                row.cpu.hub, row.cpu.manager, row.cpu.runtimes, row.cpu.bench, proxy,
                row.received > 0 ? row.cpu.total() * 1e6 / static_cast<double>(row.received)
                                 : 0.0);
  return line;
}

void append_summary_line(const Options& options, nlohmann::json line) {
  if (options.summary.empty()) return;
  line["mode"] = options.mode;
  line["variant"] = !options.label.empty()       ? options.label
                    : docker_mode(options)       ? options.hub
                    : options.cpu_group.empty() ? "native"
                                                : "native-group";
  std::ofstream(options.summary, std::ios::app) << line.dump() << "\n";
}

// One JSON line per throughput row, for a script that compares runs.
void append_summary(const Options& options, const std::string& function, const Throughput& row) {
  nlohmann::json line = {
      {"kind", "throughput"},
      {"function", function},
      {"instances", row.instances},
      {"qos", row.qos},
      {"messages", row.messages},
      {"received", row.received},
      {"seconds", row.seconds},
      {"rate", row.rate},
      {"cpu", {{"hub", row.cpu.hub}, {"manager", row.cpu.manager}, {"runtimes", row.cpu.runtimes},
               {"master", row.cpu.master}, {"bench", row.cpu.bench}, {"proxy", row.cpu.proxy}}},
      {"cpu_us_per_output",
       row.received > 0 ? row.cpu.total() * 1e6 / static_cast<double>(row.received) : 0.0}};
  // Per component: threads put on a CPU, and seconds waited runnable (cumulative schedstat).
  static const std::map<CpuSnapshot::Component, const char*> names = {
      {CpuSnapshot::Hub, "hub"},         {CpuSnapshot::Manager, "manager"},
      {CpuSnapshot::Runtimes, "runtimes"}, {CpuSnapshot::Master, "master"},
      {CpuSnapshot::Proxy, "proxy"},     {CpuSnapshot::Bench, "bench"}};
  nlohmann::json slices = nlohmann::json::object(), wait = nlohmann::json::object();
  for (const auto& [component, sched] : row.sched) {
    slices[names.at(component)] = sched.slices;
    wait[names.at(component)] = sched.wait;
  }
  line["slices"] = std::move(slices);
  line["wait"] = std::move(wait);
  append_summary_line(options, std::move(line));
}

// Creates the CPU cgroup `name` (cgroup v1: in the cpu hierarchy; v2: in the unified one, where
// the cpu controller is enabled), whose parent must exist, and returns its directory.
fs::path make_cpu_group(const std::string& name) {
  const fs::path v1 = "/sys/fs/cgroup/cpu";
  const fs::path group =
      fs::exists(v1 / "cpu.shares") ? v1 / name : fs::path("/sys/fs/cgroup") / name;
  std::error_code ec;
  fs::create_directory(group, ec);
  if (ec || !fs::exists(group / "cgroup.procs")) {
    throw std::runtime_error("cannot create the CPU cgroup " + group.string() + ": " +
                             (ec ? ec.message() : "no cgroup.procs in it"));
  }
  return group;
}

// The address of container `name` on the `baetyl` network.
std::string container_address(const std::string& name) {
  auto output = baetyl::testing::docker_ok(
      {"inspect", "--format", "{{.NetworkSettings.Networks.baetyl.IPAddress}}", name});
  while (!output.empty() && std::isspace(static_cast<unsigned char>(output.back()))) {
    output.pop_back();
  }
  if (output.empty()) throw std::runtime_error("container " + name + " has no address on baetyl");
  return output;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  options.baetyl = (fs::path(argv[0]).parent_path() / "baetyl").string();
  if (!baetyl::bench::read_options(argc, argv,
                                   {{"--baetyl", &options.baetyl},
                                    {"--sql-messages", &options.sql_messages},
                                    {"--py-messages", &options.py_messages},
                                    {"--node-messages", &options.node_messages},
                                    {"--window", &options.window},
                                    {"--rate", &options.rate},
                                    {"--seconds", &options.seconds},
                                    {"--cold-runs", &options.cold_runs},
                                    {"--max", &options.max},
                                    {"--only", &options.only},
                                    {"--py-calls", &options.py_calls},
                                    {"--node-calls", &options.node_calls},
                                    {"--sql-calls", &options.sql_calls},
                                    {"--qos", &options.qos},
                                    {"--mode", &options.mode},
                                    {"--images", &options.images},
                                    {"--hub", &options.hub},
                                    {"--summary", &options.summary},
                                    {"--cpu-group", &options.cpu_group},
                                    {"--cgroup-parent", &options.cgroup_parent},
                                    {"--label", &options.label}})) {
    return 2;
  }
  if (options.mode != "native" && options.mode != "docker") {
    std::cerr << "--mode: native or docker, not " << options.mode << "\n";
    return 2;
  }
  if (options.hub != "published" && options.hub != "host" && options.hub != "direct") {
    std::cerr << "--hub: published, host or direct, not " << options.hub << "\n";
    return 2;
  }
  if (options.hub == "host") {
    options.publish_ip = host_network_address();
    if (options.publish_ip.empty()) {
      std::cerr << "--hub host: no IPv4 address on an interface that is up and neither loopback "
                   "nor Docker's\n";
      return 2;
    }
  }
  const bool docker = docker_mode(options);
  if (docker && !options.cpu_group.empty()) {
    std::cerr << "--cpu-group is for native mode (Docker puts containers in its own)\n";
    return 2;
  }
  if (!docker && options.cgroup_parent) {
    std::cerr << "--cgroup-parent is for docker mode\n";
    return 2;
  }

  options.baetyl = fs::absolute(options.baetyl).string();  // the master runs in the work dir
  if (options.images.empty()) {
    options.images = (fs::path(options.baetyl).parent_path().parent_path() / "images").string();
  }
  const std::uint16_t port = baetyl::testing::free_port();
  std::optional<Workdir> workdir;
  try {
    workdir.emplace(port, options);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  Workdir& dir = *workdir;
  baetyl::testing::ProcessOptions process_options;
  process_options.output_file = (dir.path() / "master.out").string();
  process_options.working_dir = dir.path().string();
  std::vector<std::string> command = {options.baetyl, "start", "-w", dir.path().string()};
  fs::path cpu_group;
  if (!options.cpu_group.empty()) {
    try {
      cpu_group = make_cpu_group(options.cpu_group);
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
      return 1;
    }
    // The shell moves itself into the group and becomes the master: every service inherits it.
    command.insert(command.begin(), {"/bin/sh", "-c",
                                     "echo $$ > '" + (cpu_group / "cgroup.procs").string() +
                                         "' && exec \"$0\" \"$@\""});
  }
  baetyl::testing::Process master(command, process_options);
  std::string address = "tcp://" + options.publish_ip + ":" + std::to_string(port);
  // wait_for_port() knows 127.0.0.1 only; on the host's address wait_for_hub() below waits.
  if (options.publish_ip == "127.0.0.1" && !baetyl::testing::wait_for_port(port, 60s)) {
    std::cerr << "the hub did not listen: " << master.output() << "\n";
    return 1;
  }
  if (docker && options.hub == "direct") {
    address = "tcp://" + container_address(dir.name("localhub")) + ":1883";
  }
  if (!baetyl::bench::wait_for_hub(address, "bench", "bench", 60s)) {
    std::cerr << "the hub did not answer at " << address << ": " << master.output() << "\n";
    return 1;
  }
  std::cerr << "function-bench: " << options.mode << " mode, clients connect to " << address
            << "\n";
  const fs::path root = fs::canonical(dir.path());
  Bench bench(options, address,
              RunProcesses{.root = root,
                           .docker = docker,
                           .hub = dir.name("localhub"),
                           .manager = dir.name("function-manager"),
                           .port = port});
  bench.start_clients();
  baetyl::http::Client api({.address = "unix://" + dir.socket(), .timeout = 5s});
  baetyl::http::Headers headers;
  for (auto until = Clock::now() + 10s; headers.empty() && Clock::now() < until;) {
    headers = dir.admin_headers();
    if (headers.empty()) std::this_thread::sleep_for(10ms);
  }

  const std::vector<Runtime> runtimes = {
      {"sql", "SQL (`select * where id < 1000000`)", "function-sql", options.sql_messages, 20000},
      {"py", "Python (handler returns the event)", "function-py", options.py_messages, 3000},
      {"node", "Node (handler returns the event)", "function-node", options.node_messages, 0},
  };
  bool failed = false;
  std::string out;
  char line[512];
  {
    // The ceiling without functions: a route of the hub (t/hub -> o/hub), same clients.
    std::cerr << "function-bench: hub route\n";
    if (bench.probe("hub", 20s) < 0) {
      std::cerr << "no output from the hub route\n";
      return 1;
    }
    out += "### Hub alone (a route t/hub → o/hub, no function): the ceiling of these clients\n\n";
    out += throughput_header(docker);
    for (int qos : {0, 1}) {
      auto row = bench.throughput("hub", qos, options.sql_messages);
      out += throughput_row(row, "—", 0, docker);
      append_summary(options, "hub", row);
    }
    out += "\n";
  }
  for (const auto& runtime : runtimes) {
    if (("," + options.only + ",").find("," + runtime.key + ",") == std::string::npos) continue;
    std::cerr << "function-bench: " << runtime.key << "\n";
    // Readiness of the rules (the manager subscribes once it is up) and first instances.
    for (std::string variant : {"1", "n", "cold"}) {
      if (bench.probe(runtime.key + variant, 60s) < 0) {
        std::cerr << "no output for " << runtime.key << variant << ": " << master.output() << "\n";
        return 1;
      }
    }
    // Cold start: wait until the idle instance is evicted, then time one message.
    std::vector<double> colds;
    for (int i = 0; i < options.cold_runs; ++i) {
      auto until = Clock::now() + 20s;
      while (instances_of(api, headers, dir.name(runtime.service), runtime.key + "cold") != 0 &&
             Clock::now() < until) {
        std::this_thread::sleep_for(20ms);
      }
      std::this_thread::sleep_for(200ms);  // the stop has returned; no instance left
      double ms = bench.probe(runtime.key + "cold", 30s, 30000);
      if (ms < 0) failed = true;
      else colds.push_back(ms);
    }

    std::vector<Throughput> rows;
    for (std::string variant : {"1", "n"}) {
      // Warm up: bursts until every instance up to max runs, then one more, so that the
      // measured run is the steady state and not the starts of instances (a container's takes
      // about half a second of the machine's CPU).
      int wanted = variant == "1" ? 1 : options.max;
      auto until = Clock::now() + 30s;
      do {
        bench.throughput(runtime.key + variant, 1, std::min<long>(runtime.messages, 2000));
      } while (instances_of(api, headers, dir.name(runtime.service), runtime.key + variant) <
                   wanted &&
               Clock::now() < until);
      bench.throughput(runtime.key + variant, 1, std::min<long>(runtime.messages, 2000));
      for (int qos : {0, 1}) {
        if (options.qos.find(std::to_string(qos)) == std::string::npos) continue;
        auto row = bench.throughput(runtime.key + variant, qos, runtime.messages);
        row.variant = runtime.key + variant;
        row.instances = variant == "1" ? 1 : options.max;
        if (qos == 1 && row.received != row.messages) failed = true;
        append_summary(options, row.variant, row);
        rows.push_back(row);
      }
    }
    long lost = 0;
    auto latencies = bench.latency(runtime.key + "1", lost);

    std::snprintf(line, sizeof line, "### %s\n\n", runtime.label.c_str());
    out += line;
    out += throughput_header(docker);
    for (const auto& row : rows) {
      out += throughput_row(row, std::to_string(row.instances), runtime.target, docker);
    }
    double p99 = percentile(latencies, 99);
    std::snprintf(line, sizeof line,
                  "\nLatency at %d msg/s for %d s, QoS 1, instance.max 1 (publish to output):\n\n"
                  "| messages | lost | p50 | p90 | p99 | max | p99 ≤ 5 ms |\n"
                  "|---:|---:|---:|---:|---:|---:|---|\n"
                  "| %ld | %ld | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %s |\n",
                  options.rate, options.seconds, static_cast<long>(latencies.size()) + lost, lost,
                  percentile(latencies, 50), percentile(latencies, 90), p99,
                  percentile(latencies, 100), verdict(p99 <= 5.0 && lost == 0));
    out += line;
    double cold_median = percentile(colds, 50), cold_max = percentile(colds, 100);
    append_summary_line(options, {{"kind", "latency"},
                                  {"function", runtime.key + "1"},
                                  {"lost", lost},
                                  {"p50", percentile(latencies, 50)},
                                  {"p99", p99},
                                  {"cold_median", colds.empty() ? -1.0 : cold_median}});
    std::snprintf(line, sizeof line,
                  "\nCold start (no instance running; first message to its output), %zu of %d "
                  "runs:\n\n| min | median | max | ≤ 300 ms (median) | ≤ 300 ms (max) |\n"
                  "|---:|---:|---:|---|---|\n| %.1f ms | %.1f ms | %.1f ms | %s | %s |\n\n",
                  colds.size(), options.cold_runs, colds.empty() ? 0.0 : *std::min_element(colds.begin(), colds.end()),
                  cold_median, cold_max, verdict(!colds.empty() && cold_median <= 300),
                  verdict(!colds.empty() && cold_max <= 300));
    out += line;
  }
  std::cout << out;
  bench.stop_clients();
  master.stop(SIGTERM, 30s);
  if (!cpu_group.empty()) {
    std::error_code ec;
    fs::remove(cpu_group, ec);  // rmdir: empty once every process of the run has exited
  }
  if (docker) {
    // Whatever the master left (it removes every container it started when it stops).
    for (const auto& id : baetyl::testing::containers_of(root)) {
      baetyl::testing::docker({"rm", "-f", id});
    }
  }
  return failed ? 1 : 0;
}
