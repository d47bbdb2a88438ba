// The example as `baetyl start` runs it, in native mode (processes of the build tree) and docker
// mode (containers of the module images), started again and again, the two modes interleaved:
//   - start: from the spawn of `baetyl start` until inspect (polled every 2 ms over the Unix
//     socket) lists every instance of the example's static services (hub, function manager,
//     timer) `running`;
//   - walkthrough: from the same spawn until a message published to `t` has come back on t,
//     t/topic, t/py2hi, t/py3hi, t/node8hi and t/sqlfilter (one QoS 1 probe every 100 ms once
//     the hub answers: the function manager starts the four runtimes on the first ones);
//   - the master's RSS (VmRSS, and its peak VmHWM) with the whole example running, after 2 s of
//     inspect requests at 10/s (in docker mode these start the background stats readings);
//   - stop: SIGTERM until the master has exited (every instance and container stopped).
// Prints markdown.
//
//   baetyl-example-bench --examples DIR [--baetyl PATH] [--images DIR] [--runs 5]
//                        [--modes native,docker]
//
// DIR is the repository's example/ directory. Each run copies example/<mode> to a temporary work
// directory with the hub on a free port of 127.0.0.1 and the API on a socket in it. Native mode
// gets docker mode's timer service too (example/native has none), so both start the same three
// programs. Docker mode runs the images whose IDs scripts/build-images.sh wrote to --images
// (default: images/ next to bin/ of the baetyl binary), under service names that carry the
// bench's pid (instance names are container names, unique on the Docker host).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/null_sink.h>
#include <nlohmann/json.hpp>

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
using baetyl::bench::percentile;

struct Options {
  std::string baetyl;
  std::string examples;
  std::string images;
  int runs = 5;
  std::vector<std::string> modes = {"native", "docker"};
};

// The example's services, and the module whose image each runs in docker mode.
const std::vector<std::pair<std::string, std::string>> kServices = {
    {"localhub", "hub"},
    {"function-manager", "function-manager"},
    {"function-python27-sayhi", "function-python"},
    {"function-python36-sayhi", "function-python"},
    {"function-node85-sayhi", "function-node"},
    {"function-sql-filter", "function-sql"},
    {"timer", "timer"}};
const std::vector<std::pair<std::string, std::string>> kSeedImages = {
    {"baetyl-hub", "hub"},
    {"baetyl-function-manager", "function-manager"},
    {"baetyl-function-python27", "function-python"},
    {"baetyl-function-python36", "function-python"},
    {"baetyl-function-node85", "function-node"},
    {"baetyl-function-sql", "function-sql"},
    {"baetyl-timer", "timer"}};
const std::set<std::string> kStatic = {"localhub", "function-manager", "timer"};
const std::set<std::string> kAnswers = {"t",       "t/topic",   "t/py2hi",
                                        "t/py3hi", "t/node8hi", "t/sqlfilter"};

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc | std::ios::binary) << text;
}

void replace_in(const fs::path& path, const std::string& from, const std::string& to) {
  std::string text = read(path);
  if (text.find(from) == std::string::npos) {
    throw std::runtime_error(path.string() + " has no '" + from + "'");
  }
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  write(path, text);
}

// A copy of example/<mode>, edited as the comment at the top says.
class Workdir {
 public:
  Workdir(const Options& options, const std::string& mode, std::uint16_t port)
      : mode_(mode), prefix_(mode == "docker" ? "xbench" + std::to_string(getpid()) + "-" : "") {
    const fs::path example = fs::path(options.examples);
    fs::copy(example / mode, dir_.path(), fs::copy_options::recursive);
    const fs::path db = dir_.path() / "var/db/baetyl";
    const fs::path app = db / "application.yml";
    replace_in(dir_.path() / "etc/baetyl/conf.yml", "unix:///var/run/baetyl.sock",
               "unix://" + socket());
    if (mode == "native") {
      const std::string address = "127.0.0.1:" + std::to_string(port);
      replace_in(db / "localhub-conf/service.yml", "127.0.0.1:1883", address);
      replace_in(db / "function-manager-conf/service.yml", "127.0.0.1:1883", address);
      add_native_timer(example, address);
      return;
    }
    replace_in(app, "127.0.0.1:1883:1883", "127.0.0.1:" + std::to_string(port) + ":1883");
    for (const auto& [service, module] : kServices) {
      replace_in(app, "  - name: " + service + "\n", "  - name: " + name(service) + "\n");
    }
    for (const auto& [image, module] : kSeedImages) {
      replace_in(app, "image: hub.baidubce.com/baetyl/" + image + "\n",
                 "image: " + baetyl::bench::image_id(options.images, module) + "\n");
    }
    for (const char* conf : {"function-manager-conf/service.yml", "timer-conf/service.yml"}) {
      replace_in(db / conf, "tcp://localhub:1883", "tcp://" + name("localhub") + ":1883");
    }
    for (const auto& [service, module] : kServices) {
      if (service.starts_with("function-") && service != "function-manager") {
        replace_in(db / "function-manager-conf/service.yml", "service: " + service + "\n",
                   "service: " + name(service) + "\n");
      }
    }
  }

  std::string socket() const { return (dir_.path() / "var/run/baetyl.sock").string(); }
  const fs::path& path() const { return dir_.path(); }
  std::string name(const std::string& service) const { return prefix_ + service; }
  bool docker() const { return mode_ == "docker"; }

 private:
  // docker mode's timer, as a native service publishing to the hub at `address`.
  void add_native_timer(const fs::path& example, const std::string& address) {
    const fs::path db = dir_.path() / "var/db/baetyl";
    fs::create_directories(db / "timer-conf");
    fs::copy_file(example / "docker/var/db/baetyl/timer-conf/service.yml",
                  db / "timer-conf/service.yml");
    replace_in(db / "timer-conf/service.yml", "localhub:1883", address);
    std::string app = read(db / "application.yml");
    const auto volumes = app.find("\nvolumes:\n");
    if (volumes == std::string::npos) throw std::runtime_error("application.yml has no volumes");
    app.insert(volumes + 1,
               "  - name: timer\n    image: hub.baidubce.com/baetyl/baetyl-timer\n"
               "    replica: 1\n    mounts:\n"
               "      - {name: timer-conf, path: etc/baetyl, readonly: true}\n"
               "      - {name: timer-log, path: var/log/baetyl}\n");
    app +=
        "  - {name: timer-conf, path: var/db/baetyl/timer-conf}\n"
        "  - {name: timer-log, path: var/db/baetyl/timer-log}\n";
    write(db / "application.yml", app);
  }

  std::string mode_;
  std::string prefix_;
  baetyl::testing::TempDir dir_;
};

// Every message on t/# with an "id": when each topic's first answer for that id came.
class Answers {
 public:
  void on_message(const baetyl::mqtt::Message& message) {
    auto json = nlohmann::json::parse(message.publish.payload, nullptr, false);
    if (!json.is_object() || !json.contains("id") || !json["id"].is_number_integer()) return;
    std::lock_guard lock(mutex_);
    auto& topics = seen_[json["id"].get<long>()];
    topics.emplace(message.publish.topic, Clock::now());
  }
  // When some id first had an answer on every topic of kAnswers (the last of them), if one has.
  std::optional<Clock::time_point> complete() const {
    std::lock_guard lock(mutex_);
    std::optional<Clock::time_point> first;
    for (const auto& [id, topics] : seen_) {
      if (!std::all_of(kAnswers.begin(), kAnswers.end(),
                       [&](const std::string& t) { return topics.count(t) > 0; })) {
        continue;
      }
      Clock::time_point last{};
      for (const auto& topic : kAnswers) last = std::max(last, topics.at(topic));
      if (!first || last < *first) first = last;
    }
    return first;
  }

 private:
  mutable std::mutex mutex_;
  std::map<long, std::map<std::string, Clock::time_point>> seen_;
};

struct RunResult {
  double start_ms = 0;
  double walkthrough_ms = 0;
  double rss_mib = 0;
  double hwm_mib = 0;
  double stop_ms = 0;
  int containers = 0;  // docker mode: the example's containers running at the RSS reading
};

int running_static(const baetyl::http::Client& client, const baetyl::http::Headers& headers,
                   const Workdir& dir) {
  auto response = client.get("/v1/system/inspect", headers);
  if (response.status != 200) return -1;
  auto inspect = nlohmann::json::parse(response.body, nullptr, false);
  if (!inspect.is_object()) return -1;
  int running = 0;
  for (const auto& service : inspect["services"]) {
    bool wanted = false;
    for (const auto& name : kStatic) wanted |= service.value("name", "") == dir.name(name);
    if (!wanted) continue;
    for (const auto& instance : service["instances"]) {
      if (instance.value("status", "") == "running") ++running;
    }
  }
  return running;
}

RunResult run_once(const Options& options, const std::string& mode) {
  const std::uint16_t port = baetyl::testing::free_port();
  Workdir dir(options, mode, port);
  baetyl::testing::ProcessOptions process_options;
  process_options.output_file = (dir.path() / "master.out").string();
  const auto begin = Clock::now();
  baetyl::testing::Process master({options.baetyl, "start", "-w", dir.path().string()},
                                  process_options);
  auto fail = [&](const std::string& what) {
    throw std::runtime_error(mode + ": " + what + "\n" + master.output());
  };
  auto since_begin = [&](Clock::time_point at) {
    return std::chrono::duration<double, std::milli>(at - begin).count();
  };

  RunResult result;
  baetyl::http::Client api({.address = "unix://" + dir.socket(), .timeout = 5s});
  baetyl::http::Headers headers;
  for (;;) {
    if (Clock::now() - begin > 60s) fail("the static services did not all run within 60 s");
    if (headers.empty()) headers = baetyl::bench::admin_headers(dir.path());
    if (!headers.empty()) {
      try {
        if (running_static(api, headers, dir) == static_cast<int>(kStatic.size())) break;
      } catch (const std::exception&) {
      }
    }
    std::this_thread::sleep_for(2ms);
  }
  result.start_ms = since_begin(Clock::now());

  const std::string address = "tcp://127.0.0.1:" + std::to_string(port);
  if (!baetyl::bench::wait_for_hub(address, "test", "hahaha", 60s)) fail("the hub did not answer");
  auto logger =
      std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
  baetyl::mqtt::ClientConfig config;
  config.address = address;
  config.username = "test";
  config.password = "hahaha";
  config.clean_session = true;
  config.client_id = "bench-sub";
  config.subscriptions = {{"t/#", 1}};
  Answers answers;
  baetyl::mqtt::Client subscriber(config, logger);
  bool subscribed = false;
  std::mutex subscribed_mutex;
  subscriber.start({.on_message = [&](const auto& m) { answers.on_message(m); },
                    .on_connected =
                        [&](bool) {
                          std::lock_guard lock(subscribed_mutex);
                          subscribed = true;
                        }});
  config.client_id = "bench-pub";
  config.subscriptions.clear();
  baetyl::mqtt::Client publisher(config, logger);
  publisher.start();
  if (!subscriber.wait_connected(30s) || !publisher.wait_connected(30s)) {
    fail("the bench clients did not connect");
  }
  for (long id = 0; !answers.complete(); ++id) {
    if (Clock::now() - begin > 120s) fail("no message came back on every topic within 120 s");
    publisher.publish("t", "{\"id\":" + std::to_string(id) + "}", 1);
    std::this_thread::sleep_for(100ms);
  }
  result.walkthrough_ms = since_begin(*answers.complete());

  for (int i = 0; i < 20; ++i) {
    api.get("/v1/system/inspect", headers);
    std::this_thread::sleep_for(100ms);
  }
  result.rss_mib =
      static_cast<double>(baetyl::testing::status_kib(master.pid(), "VmRSS:")) / 1024.0;
  result.hwm_mib =
      static_cast<double>(baetyl::testing::status_kib(master.pid(), "VmHWM:")) / 1024.0;
  if (dir.docker()) {
    result.containers = static_cast<int>(baetyl::testing::container_names_of(dir.path()).size());
  }

  subscriber.stop();
  publisher.stop();
  const auto stop_begin = Clock::now();
  const int code = master.stop(SIGTERM, 60s);
  result.stop_ms = std::chrono::duration<double, std::milli>(Clock::now() - stop_begin).count();
  if (code != 0) fail("the master exited with " + std::to_string(code));
  if (dir.docker()) {
    const auto left = baetyl::testing::containers_of(dir.path());
    for (const auto& id : left) baetyl::testing::docker({"rm", "-f", id});
    if (!left.empty()) fail(std::to_string(left.size()) + " container(s) left after the stop");
  }
  return result;
}

void print_row(const char* what, const std::string& mode, const std::vector<double>& values,
               const char* unit, int decimals = 0) {
  std::printf("| %s | %s | %.*f %s | %.*f %s | %.*f %s |\n", what, mode.c_str(), decimals,
              *std::min_element(values.begin(), values.end()), unit, decimals,
              percentile(values, 50), unit, decimals,
              *std::max_element(values.begin(), values.end()), unit);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  options.baetyl = (fs::path(argv[0]).parent_path() / "baetyl").string();
  if (!baetyl::bench::read_options(argc, argv,
                                   {{"--baetyl", &options.baetyl},
                                    {"--examples", &options.examples},
                                    {"--images", &options.images},
                                    {"--runs", &options.runs},
                                    {"--modes", &options.modes}})) {
    return 2;
  }
  if (options.examples.empty()) {
    std::cerr << "--examples DIR (the repository's example/ directory) is required\n";
    return 2;
  }
  for (const auto& mode : options.modes) {
    if (mode != "native" && mode != "docker") {
      std::cerr << "--modes: native and docker, not " << mode << "\n";
      return 2;
    }
  }
  options.baetyl = fs::absolute(options.baetyl).string();
  options.examples = fs::absolute(options.examples).string();
  if (options.images.empty()) {
    options.images = (fs::path(options.baetyl).parent_path().parent_path() / "images").string();
  }

  std::map<std::string, std::vector<RunResult>> results;
  try {
    for (int run = 0; run < options.runs; ++run) {
      for (const auto& mode : options.modes) {
        std::cerr << "example-bench: run " << run + 1 << " of " << options.runs << ", " << mode
                  << "\n";
        results[mode].push_back(run_once(options, mode));
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "example-bench: " << e.what() << "\n";
    return 1;
  }

  std::printf("| | mode | min | median | max |\n|---|---|---:|---:|---:|\n");
  for (const auto& mode : options.modes) {
    const auto& runs = results[mode];
    std::vector<double> start, walkthrough, rss, hwm, stop;
    for (const auto& r : runs) {
      start.push_back(r.start_ms);
      walkthrough.push_back(r.walkthrough_ms);
      rss.push_back(r.rss_mib);
      hwm.push_back(r.hwm_mib);
      stop.push_back(r.stop_ms);
    }
    print_row("`baetyl start` → hub, function manager, timer running", mode, start, "ms");
    print_row("`baetyl start` → a message answered on all six topics", mode, walkthrough, "ms");
    print_row("master RSS, example running", mode, rss, "MiB", 2);
    print_row("master peak RSS (VmHWM)", mode, hwm, "MiB", 2);
    print_row("SIGTERM → master exited, everything stopped", mode, stop, "ms");
  }
  std::printf("\n%d runs per mode, interleaved (", options.runs);
  for (std::size_t i = 0; i < options.modes.size(); ++i) {
    std::printf("%s%s", i ? ", " : "", options.modes[i].c_str());
  }
  std::printf(", ...).");
  if (results.count("docker")) {
    std::printf(" Docker mode had %d containers running at the RSS reading.",
                results["docker"].front().containers);
  }
  std::printf("\n");
  return 0;
}
