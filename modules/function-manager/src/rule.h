#pragma once
// One rule: a hub client subscribed to subscribe.topic whose messages are passed to a function
// and whose results are published on publish.topic.
//
// Flow control: messages are received with manual acknowledgement and queued; up to
// instance.max workers take them from the queue, call the function and publish the result with
// async_publish (which never blocks); the input is acknowledged when the output is acknowledged
// (or at once when there is nothing to publish). Nothing in the pipeline waits on the hub while
// the hub waits on it: the queue takes every message the hub sends (the hub's in-flight window
// bounds the QoS 1 ones), and backpressure is the missing acknowledgement. Only QoS 0 messages
// are dropped, when more than `kMaxQueuedQos0` wait.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/logger.h>
#include <nlohmann/json.hpp>

#include "baetyl/mqtt/client.h"
#include "config.h"
#include "pool.h"

namespace baetyl::function {

inline constexpr std::size_t kMaxQueuedQos0 = 10000;

// The documented error output: {"functionMessage":{...},"errorMessage":"...","errorType":"..."}.
nlohmann::json error_output(const baetyl::FunctionMessage& input, const std::string& message,
                            const std::string& type);
std::string base64_encode(const std::string& data);
std::string new_invoke_id();

class RuleRunner {
 public:
  RuleRunner(RuleConfig rule, InstancePool& pool, std::unique_ptr<mqtt::Client> client,
             std::shared_ptr<spdlog::logger> logger);
  ~RuleRunner();
  RuleRunner(const RuleRunner&) = delete;
  RuleRunner& operator=(const RuleRunner&) = delete;

  void start();
  // Stops taking messages, waits for the calls in progress, stops the client.
  void stop();

  const RuleConfig& config() const { return rule_; }
  std::uint64_t processed() const { return processed_.load(); }

 private:
  void on_message(const mqtt::Message& message);
  void work();
  void handle(const mqtt::Message& message);
  // Calls the function with retries; returns true with `reply` set, or false with `error` and
  // `error_type` set.
  bool invoke(const baetyl::FunctionMessage& request, baetyl::FunctionMessage& reply,
              std::string& error, std::string& error_type);
  void publish(const mqtt::Message& input, std::string payload);
  bool sleep_for(std::chrono::milliseconds duration);

  RuleConfig rule_;
  InstancePool& pool_;
  std::unique_ptr<mqtt::Client> client_;
  std::shared_ptr<spdlog::logger> log_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<mqtt::Message> queue_;
  std::size_t queued_qos0_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::atomic<std::uint64_t> processed_{0};
};

}  // namespace baetyl::function
