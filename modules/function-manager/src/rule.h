#pragma once
// One rule: a hub client subscribed to subscribe.topic whose messages are passed to a function
// and whose results are published on publish.topic.
//
// Call path: messages are received with manual acknowledgement and queued; they are taken in
// order and started as asynchronous gRPC calls, each on a call slot from the pool (which bounds
// the calls in flight per instance). Calls are started by the thread that has the event (the hub
// client's thread for a new message, the gRPC thread of a call that ended), a dispatcher thread
// starts the rest (waits for an instance, retries). The reply is handled on a gRPC thread: the
// result is published with async_publish (which never blocks) and the input acknowledged when
// the output is acknowledged (or at once when there is nothing to publish). A failed call is
// retried by the dispatcher after a backoff. With instance.max 1 the results pass a reorder
// buffer so they are published in input order; with more instances they are published as they
// come.
//
// Flow control: QoS 1 messages are bounded by the hub's in-flight window (an input is
// acknowledged only after its output). QoS 0 messages are bounded by `kMaxQueuedQos0`: when that
// many wait, the hub client's callback waits for room, so the client stops reading from the hub
// socket; a QoS 0 message is dropped only when no room comes within `kQos0StallLimit` (the
// function is stalled), as the client cannot answer keepalives while it waits.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/logger.h>
#include <nlohmann/json.hpp>

#include "baetyl/base64.h"
#include "baetyl/mqtt/client.h"
#include "config.h"
#include "pool.h"
#include "sequencer.h"

namespace baetyl::function {

inline constexpr std::size_t kMaxQueuedQos0 = 1000;
inline constexpr std::chrono::seconds kQos0StallLimit{2};

// The documented error output: {"functionMessage":{...},"errorMessage":"...","errorType":"..."}.
nlohmann::json error_output(const baetyl::FunctionMessage& input, const std::string& message,
                            const std::string& type);
std::string new_invoke_id();

class RuleRunner {
 public:
  RuleRunner(RuleConfig rule, InstancePool& pool, std::unique_ptr<mqtt::Client> client,
             std::shared_ptr<spdlog::logger> logger);
  ~RuleRunner();
  RuleRunner(const RuleRunner&) = delete;
  RuleRunner& operator=(const RuleRunner&) = delete;

  void start();
  // Stops taking messages, waits for the calls in flight (their results are still published),
  // stops the client. Inputs waiting for a retry are not acknowledged (the hub sends QoS 1 ones
  // again).
  void stop();

  const RuleConfig& config() const { return rule_; }
  std::uint64_t processed() const { return processed_.load(); }

 private:
  // One input through its attempts.
  struct Call {
    mqtt::Message input;
    baetyl::FunctionMessage request;
    baetyl::FunctionMessage reply;
    std::unique_ptr<grpc::ClientContext> context;  // one per unary attempt
    std::chrono::steady_clock::time_point started;  // of the attempt in flight
    std::shared_ptr<Instance> instance;
    std::uint64_t position = 0;  // in the sequencer
    bool prepared = false;  // request filled in
    int attempt = 0;
    std::chrono::milliseconds backoff{100};
    std::string error;
  };
  // What becomes of an input once its call is over.
  struct Output {
    enum class Kind { Publish, Ack, Nothing } kind = Kind::Nothing;
    mqtt::Message input;
    std::string payload;
  };

  void on_message(const mqtt::Message& message);
  bool wait_for_qos0_room(std::unique_lock<std::mutex>& lock);
  bool has_ready_work_locked() const;
  // A retry that is due, else the next queued input.
  std::unique_ptr<Call> take_next_locked();
  // Starts calls while there is work and a free call slot, on the calling thread (the hub
  // client's on a new message, a gRPC thread when a call ends): no hand-off per message.
  void pump();
  // Starts the work that pump() cannot: when no call is in flight and no slot is free (no
  // instance yet, all busy with other rules' calls), and retries that come due.
  void dispatch();
  void prepare_request(Call& call) const;
  // Finishes `call` with the error output when its payload exceeds message.length.max.
  bool too_long(Call& call);
  // With `slot` null, waits for one (up to the timeout).
  void start_attempt(std::unique_ptr<Call> call, std::shared_ptr<Instance> slot);
  void on_reply(std::unique_ptr<Call> call, const grpc::Status& status);
  // Retries after the backoff, or gives up with the error output.
  void attempt_failed(std::unique_ptr<Call> call, std::string error);
  void finish(Call& call, Output::Kind kind, std::string payload = {});
  void emit(Output& output);
  void publish(const mqtt::Message& input, std::string payload);
  // The output of `input` was refused for good: logged, and the input acknowledged.
  void refused(const mqtt::Message& input, const std::string& why);
  void call_ended();

  RuleConfig rule_;
  InstancePool& pool_;
  std::unique_ptr<mqtt::Client> client_;
  std::shared_ptr<spdlog::logger> log_;
  OutputSequencer<Output> outputs_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::condition_variable qos0_room_;
  std::condition_variable calls_ended_;
  std::deque<mqtt::Message> queue_;
  std::size_t queued_qos0_ = 0;
  std::multimap<std::chrono::steady_clock::time_point, std::unique_ptr<Call>> retries_;
  std::size_t calls_in_flight_ = 0;
  bool stopping_ = false;
  std::thread dispatcher_;
  std::atomic<std::uint64_t> processed_{0};
};

}  // namespace baetyl::function
