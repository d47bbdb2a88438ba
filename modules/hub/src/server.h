#pragma once
// The hub as a whole: the store, the broker, the listeners and the worker threads.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include <spdlog/logger.h>
#include <nlohmann/json.hpp>

#include "baetyl/asio.h"
#include "baetyl/context.h"
#include "broker.h"
#include "config.h"
#include "connection.h"
#include "store.h"

namespace baetyl::hub {

class Hub {
 public:
  // `threads` 0: one worker per core; `offload`: when a write moves to a less busy worker.
  Hub(HubConfig config, std::shared_ptr<spdlog::logger> log, std::size_t threads = 0,
      Workers::Policy offload = {});
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Opens the store, restores its state, binds every listener and starts the workers. Throws
  // (naming the listener or file) when something cannot be set up.
  void start();
  // Stops accepting, closes every connection, commits what is pending and stops the workers,
  // giving up on connections still open after `timeout`.
  void stop(std::chrono::milliseconds timeout);

  Broker& broker() { return *broker_; }
  Workers& workers() { return *workers_; }
  const HubConfig& config() const { return config_; }
  std::size_t open_connections();
  // Connections, sessions, messages in/out and route counters, as reported to the master.
  nlohmann::json stats();
  // {"backlog", "commits", "commit_duration_seconds"} (the last with a store only).
  nlohmann::json store_stats() const;
  // Drops messages past the retention (called every cleanup interval).
  void cleanup() { broker_->cleanup(); }
  // Gives memory back to the system once much was freed (called every second; memory.h).
  void release_memory();

 private:
  asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor& acceptor,
                                    const ListenAddress& address);
  asio::awaitable<void> serve(PlainSocket socket, const ListenAddress& address,
                              Connection::Strand strand);
  // A connection closed: forget it.
  void finished(Connection* connection);
  void bind(const ListenAddress& address);

  HubConfig config_;
  std::shared_ptr<spdlog::logger> log_;
  // The io_context of the next accepted connection (round robin).
  asio::io_context& next_context();

  std::size_t threads_count_;
  // One io_context per worker thread: a connection's reads, writes and timers stay on one
  // thread, without waking another worker for each event as a shared io_context does.
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::unique_ptr<Workers> workers_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::atomic<std::size_t> next_context_{0};
  std::vector<std::thread> threads_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Broker> broker_;
  std::shared_ptr<asio::ssl::context> tls_;
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors_;
  std::vector<const ListenAddress*> acceptor_addresses_;

  std::mutex connections_mutex_;
  std::condition_variable connections_changed_;
  std::unordered_set<std::shared_ptr<Connection>> connections_;
  bool stopped_ = false;
};

// The module's body for baetyl::run: serves until SIGTERM/SIGINT, reporting stats to the master
// every report.interval when started by one, publishing the $SYS topics every sys.interval, and
// logging status when status.logging.enable.
void run_hub(Context& ctx);

}  // namespace baetyl::hub
