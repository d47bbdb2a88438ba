#pragma once
// MQTT helpers shared by the benchmark programs that drive a hub through the SDK client.
#include <chrono>
#include <memory>
#include <string>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "baetyl/mqtt/client.h"

namespace baetyl::bench {

// Waits until an MQTT client gets a CONNACK from the hub at `address` with `username` and
// `password`, trying a new connection every `every` (in docker mode docker-proxy accepts
// connections on a published port before the hub listens in its container, and the SDK client's
// own reconnect backoff is too coarse for timing a start). False after `timeout`.
inline bool wait_for_hub(const std::string& address, const std::string& username,
                         const std::string& password, std::chrono::milliseconds timeout,
                         std::chrono::milliseconds every = std::chrono::milliseconds(100)) {
  baetyl::mqtt::ClientConfig config;
  config.address = address;
  config.username = username;
  config.password = password;
  config.client_id = "bench-probe";
  config.clean_session = true;
  auto logger = std::make_shared<spdlog::logger>("bench-probe",
                                                 std::make_shared<spdlog::sinks::null_sink_mt>());
  for (auto until = std::chrono::steady_clock::now() + timeout;
       std::chrono::steady_clock::now() < until;) {
    baetyl::mqtt::Client probe(config, logger);
    probe.start();
    if (probe.wait_connected(every)) return true;
  }
  return false;
}

}  // namespace baetyl::bench
