// store_bench: commit latency of the hub's store alone (no network), the writer-thread path of
// a QoS 1 PUBACK: one message every 1/R s, time from add_message to its commit callback.
//
//   store_bench [--rate 2000] [--seconds 5] [--sync normal|full] [--checkpoint thread|writer]
//               [--dir DIR]  (default: a new directory under /tmp)
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "store.h"

using Clock = std::chrono::steady_clock;
using baetyl::hub::Message;
using baetyl::hub::Store;
using baetyl::hub::StoreOptions;

int main(int argc, char** argv) {
  double rate = 2000, seconds = 5;
  StoreOptions options;
  std::string dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--rate") rate = std::stod(v);
    else if (k == "--seconds") seconds = std::stod(v);
    else if (k == "--sync") options.sync_every_commit = v == "full";
    else if (k == "--checkpoint") options.checkpoint_thread = v == "thread";
    else if (k == "--dir") dir = v;
    else {
      std::fprintf(stderr, "store_bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (dir.empty()) {
    dir = (std::filesystem::temp_directory_path() /
           ("store_bench-" + std::to_string(::getpid())))
              .string();
  }
  const long total = static_cast<long>(rate * seconds);
  std::vector<std::int64_t> latency(static_cast<std::size_t>(total));
  std::atomic<long> done{0};
  {
    Store store(dir, options, spdlog::default_logger());
    store.load();
    store.start();
    store.save_session("subscriber");
    const auto start = Clock::now();
    const auto period = std::chrono::duration<double>(1.0 / rate);
    for (long i = 0; i < total; ++i) {
      std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(period * i));
      auto m = std::make_shared<Message>();
      m->id = store.next_message_id();
      m->topic = "bench/store";
      m->payload = std::string(64, 'x');
      m->qos = 1;
      m->time = baetyl::hub::unix_millis();
      const auto sent = Clock::now();
      store.add_message(m, {{"subscriber", 1}}, [&, i, sent] {
        latency[static_cast<std::size_t>(i)] = (Clock::now() - sent).count();
        done.fetch_add(1);
      });
      store.ack("subscriber", m->id);
    }
    store.flush();
    std::error_code ec;
    const auto wal = std::filesystem::file_size(std::filesystem::path(dir) / "hub.db-wal", ec);
    std::printf("store rate %.0f  sync %s  checkpoint %s  wal %.1f MB  commits %llu  checkpoints %llu  ", rate,
                options.sync_every_commit ? "full" : "normal",
                options.checkpoint_thread ? "thread" : "writer", ec ? 0.0 : static_cast<double>(wal) / 1e6,
                static_cast<unsigned long long>(store.commits()),
                static_cast<unsigned long long>(store.checkpoints()));
  }
  std::filesystem::remove_all(dir);
  std::sort(latency.begin(), latency.end());
  auto at = [&](double q) {
    return static_cast<double>(latency[std::min<std::size_t>(
               static_cast<std::size_t>(q * static_cast<double>(total)), latency.size() - 1)]) /
           1e6;
  };
  std::printf("commit p50 %.3f  p90 %.3f  p99 %.3f  max %.3f ms\n", at(0.5), at(0.9), at(0.99),
              static_cast<double>(latency.back()) / 1e6);
  return done.load() == total ? 0 : 1;
}
