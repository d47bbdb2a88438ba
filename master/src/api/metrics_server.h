#pragma once
// The master's Prometheus endpoint (conf.yml metrics.address): HTTP/1.1 on TCP, GET /metrics
// answers the text exposition format; no authentication, so it listens on 127.0.0.1 unless the
// operator says otherwise. One thread of its own; a scrape never waits for the API's workers.
#include <functional>
#include <memory>
#include <string>

#include <spdlog/logger.h>

namespace baetyl::master {

class MetricsServer {
 public:
  // `address`: tcp://host:port (port 0 picks a free one). `render` makes the body of each scrape.
  MetricsServer(std::string address, std::function<std::string()> render,
                std::shared_ptr<spdlog::logger> logger);
  ~MetricsServer();  // stops
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds and serves; throws std::runtime_error naming the address when it cannot listen.
  void start();
  void stop();
  // The address listened on, the port resolved: tcp://127.0.0.1:9600.
  std::string address() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace baetyl::master
