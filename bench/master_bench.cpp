// The master under measurement: a real `baetyl start` in native mode with N services (each a
// package running sleep(1)), timed from the spawn of baetyl until inspect lists every
// instance running; then inspect requests at a fixed rate over the Unix socket (a new connection
// each, as a service's SDK client makes them) with their latency; the master's RSS throughout.
// Prints markdown.
//
//   baetyl-master-bench [--baetyl PATH] [--services 10] [--runs 5] [--rate 200] [--seconds 10]
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "baetyl/http/client.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"
#include "bench_support.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  std::string baetyl;
  int services = 10;
  int runs = 5;
  int rate = 200;
  int seconds = 10;
};

using baetyl::bench::percentile;

class Workdir {
 public:
  explicit Workdir(int services) {
    // A package whose program is sleep(1): one exec per instance, like a module binary.
    dir_.write("var/db/baetyl/pkg/package.yml", "entry: sleep\n");
    fs::create_symlink("/bin/sleep", dir_.path() / "var/db/baetyl/pkg/sleep");
    dir_.write("etc/baetyl/conf.yml", "mode: native\ngrace: 5s\nserver:\n  address: unix://" +
                                          socket() + "\nlogger:\n  path: var/log/baetyl/baetyl.log\n");
    std::string app = "version: bench\nservices:\n";
    for (int i = 0; i < services; ++i) {
      app += "  - name: svc" + std::to_string(i) +
             "\n    image: bench/sleep\n    replica: 1\n    args: ['100000']\n"
             "    mounts: [{name: pkg, path: lib/baetyl/bench/sleep, readonly: true}]\n";
    }
    app += "volumes:\n  - {name: pkg, path: var/db/baetyl/pkg}\n";
    dir_.write("var/db/baetyl/application.yml", app);
  }
  std::string socket() const { return (dir_.path() / "var/run/baetyl.sock").string(); }
  const fs::path& path() const { return dir_.path(); }

  baetyl::http::Headers admin_headers() const { return baetyl::bench::admin_headers(path()); }

 private:
  baetyl::testing::TempDir dir_;
};

int running_instances(const baetyl::http::Client& client, const baetyl::http::Headers& headers) {
  auto response = client.get("/v1/system/inspect", headers);
  if (response.status != 200) return -1;
  auto inspect = nlohmann::json::parse(response.body);
  int running = 0;
  for (const auto& service : inspect["services"]) {
    for (const auto& instance : service["instances"]) {
      if (instance.value("status", "") == "running") ++running;
    }
  }
  return running;
}

struct StartResult {
  double start_ms = 0;
  long rss_kib = 0;
};

StartResult measure_start(const Options& options, Workdir& dir,
                          std::unique_ptr<baetyl::testing::Process>& master) {
  baetyl::testing::ProcessOptions process_options;
  process_options.output_file = (dir.path() / "master.out").string();
  auto begin = Clock::now();
  master = std::make_unique<baetyl::testing::Process>(
      std::vector<std::string>{options.baetyl, "start", "-w", dir.path().string()},
      process_options);
  baetyl::http::Client client({.address = "unix://" + dir.socket(), .timeout = 2s});
  baetyl::http::Headers headers;
  for (;;) {
    if (Clock::now() - begin > 20s) throw std::runtime_error("master did not start: " + master->output());
    if (headers.empty()) headers = dir.admin_headers();
    if (!headers.empty()) {
      try {
        if (running_instances(client, headers) == options.services) break;
      } catch (const std::exception&) {
      }
    }
    std::this_thread::sleep_for(2ms);
  }
  StartResult result;
  result.start_ms = std::chrono::duration<double, std::milli>(Clock::now() - begin).count();
  std::this_thread::sleep_for(300ms);  // let the services' first sampling settle
  result.rss_kib = baetyl::testing::status_kib(master->pid());
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  options.baetyl = (fs::path(argv[0]).parent_path() / "baetyl").string();
  if (!baetyl::bench::read_options(argc, argv,
                                   {{"--baetyl", &options.baetyl},
                                    {"--services", &options.services},
                                    {"--runs", &options.runs},
                                    {"--rate", &options.rate},
                                    {"--seconds", &options.seconds}})) {
    return 2;
  }

  std::vector<double> starts;
  std::vector<long> rss;
  for (int run = 0; run < options.runs; ++run) {
    Workdir dir(options.services);
    std::unique_ptr<baetyl::testing::Process> master;
    auto result = measure_start(options, dir, master);
    starts.push_back(result.start_ms);
    rss.push_back(result.rss_kib);
    master->stop(SIGTERM, 20s);
  }

  // Inspect latency at a fixed rate, on a fresh master.
  Workdir dir(options.services);
  std::unique_ptr<baetyl::testing::Process> master;
  measure_start(options, dir, master);
  baetyl::http::Client client({.address = "unix://" + dir.socket(), .timeout = 5s});
  auto headers = dir.admin_headers();
  std::vector<double> latencies;
  const auto interval = std::chrono::nanoseconds(1'000'000'000 / options.rate);
  const int total = options.rate * options.seconds;
  auto next = Clock::now();
  int failures = 0;
  for (int i = 0; i < total; ++i) {
    std::this_thread::sleep_until(next);
    next += interval;
    auto sent = Clock::now();
    auto response = client.get("/v1/system/inspect", headers);
    latencies.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
    if (response.status != 200) ++failures;
  }
  long rss_after = baetyl::testing::status_kib(master->pid());
  long peak = baetyl::testing::status_kib(master->pid(), "VmHWM:");
  auto stop_begin = Clock::now();
  master->stop(SIGTERM, 20s);
  double stop_ms = std::chrono::duration<double, std::milli>(Clock::now() - stop_begin).count();

  std::printf("### Start: `baetyl start` until inspect lists all %d services running (%d runs)\n\n",
              options.services, options.runs);
  std::printf("| | min | median | max |\n|---|---:|---:|---:|\n");
  std::printf("| start to all running | %.1f ms | %.1f ms | %.1f ms |\n",
              *std::min_element(starts.begin(), starts.end()), percentile(starts, 50),
              *std::max_element(starts.begin(), starts.end()));
  std::vector<double> rss_mib;
  for (long kib : rss) rss_mib.push_back(static_cast<double>(kib) / 1024.0);
  std::printf("| master RSS with %d services running | %.2f MiB | %.2f MiB | %.2f MiB |\n\n",
              options.services, *std::min_element(rss_mib.begin(), rss_mib.end()),
              percentile(rss_mib, 50), *std::max_element(rss_mib.begin(), rss_mib.end()));
  std::printf("### Inspect at %d requests/s for %d s (%d services, a new connection per request)\n\n",
              options.rate, options.seconds, options.services);
  std::printf("| requests | failed | p50 | p90 | p99 | max |\n|---:|---:|---:|---:|---:|---:|\n");
  std::printf("| %d | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms |\n\n", total, failures,
              percentile(latencies, 50), percentile(latencies, 90), percentile(latencies, 99),
              percentile(latencies, 100));
  std::printf("Master RSS after the inspect load: %.2f MiB (peak VmHWM %.2f MiB). "
              "SIGTERM to exit with %d services stopped: %.0f ms.\n",
              static_cast<double>(rss_after) / 1024.0, static_cast<double>(peak) / 1024.0,
              options.services, stop_ms);
  return failures == 0 ? 0 : 1;
}
