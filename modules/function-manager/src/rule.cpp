#include "rule.h"

#include <algorithm>
#include <random>

namespace baetyl::function {

namespace {

using Clock = std::chrono::steady_clock;

const char* code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "Canceled";
    case grpc::StatusCode::UNKNOWN:
      return "Unknown";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "InvalidArgument";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DeadlineExceeded";
    case grpc::StatusCode::NOT_FOUND:
      return "NotFound";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "AlreadyExists";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PermissionDenied";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "ResourceExhausted";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FailedPrecondition";
    case grpc::StatusCode::ABORTED:
      return "Aborted";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OutOfRange";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "Unimplemented";
    case grpc::StatusCode::INTERNAL:
      return "Internal";
    case grpc::StatusCode::UNAVAILABLE:
      return "Unavailable";
    case grpc::StatusCode::DATA_LOSS:
      return "DataLoss";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "Unauthenticated";
    default:
      return "Unknown";
  }
}

// The runtime answered on purpose (the handler raised, the function is unknown, the input is
// bad): the instance is fine and stays in the pool. Any other failure discards it.
bool instance_answered(grpc::StatusCode code) {
  // RESOURCE_EXHAUSTED: the runtime's own bound on concurrent calls (server.concurrent.max).
  return code == grpc::StatusCode::UNKNOWN || code == grpc::StatusCode::INVALID_ARGUMENT ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         code == grpc::StatusCode::NOT_FOUND || code == grpc::StatusCode::FAILED_PRECONDITION ||
         code == grpc::StatusCode::OUT_OF_RANGE || code == grpc::StatusCode::UNIMPLEMENTED;
}

}  // namespace

std::string new_invoke_id() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  std::uint64_t a = random(), b = random();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  char text[37];
  std::snprintf(text, sizeof text, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return text;
}

nlohmann::json error_output(const baetyl::FunctionMessage& input, const std::string& message,
                            const std::string& type) {
  return {{"functionMessage",
           {{"ID", input.id()},
            {"QOS", input.qos()},
            {"Topic", input.topic()},
            {"Payload", base64_encode(input.payload())},
            {"Timestamp", input.timestamp()},
            {"FunctionName", input.functionname()},
            {"FunctionInvokeID", input.functioninvokeid()}}},
          {"errorMessage", message},
          {"errorType", type}};
}

RuleRunner::RuleRunner(RuleConfig rule, InstancePool& pool, std::unique_ptr<mqtt::Client> client,
                       std::shared_ptr<spdlog::logger> logger)
    : rule_(std::move(rule)),
      pool_(pool),
      client_(std::move(client)),
      log_(std::move(logger)),
      outputs_(pool_.config().instance.max == 1, [this](Output& output) { emit(output); }) {}

RuleRunner::~RuleRunner() { stop(); }

void RuleRunner::start() {
  dispatcher_ = std::thread([this] { dispatch(); });
  mqtt::ClientCallbacks callbacks;
  callbacks.manual_ack = true;
  callbacks.on_message = [this](const mqtt::Message& m) { on_message(m); };
  callbacks.on_error = [this](const std::string& e) {
    log_->error("rule {}: hub client stopped: {}", rule_.client_id, e);
  };
  client_->start(std::move(callbacks));
}

void RuleRunner::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !dispatcher_.joinable()) return;
    stopping_ = true;
    changed_.notify_all();
    qos0_room_.notify_all();
  }
  if (dispatcher_.joinable()) dispatcher_.join();
  {
    std::unique_lock lock(mutex_);
    calls_ended_.wait(lock, [&] { return calls_in_flight_ == 0; });
    retries_.clear();
  }
  if (client_) client_->stop();
}

void RuleRunner::on_message(const mqtt::Message& message) {
  {
    std::unique_lock lock(mutex_);
    if (stopping_) return;
    if (message.publish.qos == 0) {
      if (!wait_for_qos0_room(lock)) {
        if (!stopping_) {
          log_->warn("rule {}: {} QoS 0 messages waiting for {} s; dropping one on {}",
                     rule_.client_id, queued_qos0_, kQos0StallLimit.count(),
                     message.publish.topic);
        }
        return;
      }
      ++queued_qos0_;
    }
    queue_.push_back(message);
  }
  pump();
}

bool RuleRunner::wait_for_qos0_room(std::unique_lock<std::mutex>& lock) {
  if (queued_qos0_ < kMaxQueuedQos0) return true;
  return qos0_room_.wait_for(lock, kQos0StallLimit,
                             [&] { return stopping_ || queued_qos0_ <= kMaxQueuedQos0 / 2; }) &&
         !stopping_;
}

bool RuleRunner::has_ready_work_locked() const {
  return !queue_.empty() || (!retries_.empty() && retries_.begin()->first <= Clock::now());
}

std::unique_ptr<RuleRunner::Call> RuleRunner::take_next_locked() {
  if (!retries_.empty() && retries_.begin()->first <= Clock::now()) {
    auto call = std::move(retries_.begin()->second);
    retries_.erase(retries_.begin());
    return call;
  }
  auto call = std::make_unique<Call>();
  call->input = std::move(queue_.front());
  queue_.pop_front();
  // Woken at half the bound, not per message: the hub client reads on in one go.
  if (call->input.publish.qos == 0 && queued_qos0_-- == kMaxQueuedQos0 / 2) {
    qos0_room_.notify_one();
  }
  // Reserved under the lock: positions follow the queue order.
  call->position = outputs_.reserve();
  return call;
}

void RuleRunner::pump() {
  while (true) {
    std::unique_ptr<Call> call;
    std::shared_ptr<Instance> slot;
    {
      std::lock_guard lock(mutex_);
      if (stopping_ || !has_ready_work_locked()) return;
      slot = pool_.try_acquire();
      if (!slot) {
        // Nothing in flight whose end would pump again: the dispatcher waits for a slot.
        if (calls_in_flight_ == 0) changed_.notify_one();
        return;
      }
      call = take_next_locked();
      ++calls_in_flight_;
    }
    start_attempt(std::move(call), std::move(slot));
  }
}

void RuleRunner::dispatch() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (has_ready_work_locked() && calls_in_flight_ == 0) {
      auto call = take_next_locked();
      ++calls_in_flight_;
      lock.unlock();
      start_attempt(std::move(call), nullptr);
      pump();
      lock.lock();
      continue;
    }
    if (has_ready_work_locked()) {
      // Calls in flight pump when they end; a retry that came due meanwhile is started here.
      lock.unlock();
      pump();
      lock.lock();
      if (has_ready_work_locked() && calls_in_flight_ > 0) changed_.wait(lock);
      continue;
    }
    if (retries_.empty()) {
      changed_.wait(lock);
    } else {
      changed_.wait_until(lock, retries_.begin()->first);
    }
  }
}

void RuleRunner::prepare_request(Call& call) const {
  const auto& message = call.input.publish;
  auto& request = call.request;
  request.set_id(message.packet_id);
  request.set_qos(message.qos);
  request.set_topic(message.topic);
  request.set_payload(message.payload);
  request.set_timestamp(std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
  request.set_functionname(rule_.function);
  request.set_functioninvokeid(new_invoke_id());
  call.prepared = true;
}

bool RuleRunner::too_long(Call& call) {
  std::uint64_t limit = pool_.config().message_length_max.bytes;
  if (call.request.payload().size() <= limit) return false;
  finish(call, Output::Kind::Publish,
         error_output(call.request,
                      "message too long: " + std::to_string(call.request.payload().size()) +
                          " bytes, message.length.max is " + std::to_string(limit),
                      "*errors.Err")
             .dump());
  return true;
}

void RuleRunner::start_attempt(std::unique_ptr<Call> call, std::shared_ptr<Instance> slot) {
  if (!call->prepared) {
    prepare_request(*call);
    if (too_long(*call)) {
      pool_.release(std::move(slot), true);
      call_ended();
      return;
    }
  }
  if (!slot) {
    try {
      slot = pool_.acquire(Clock::now() + pool_.config().timeout);
    } catch (const std::exception& e) {
      log_->warn("rule {}: attempt {}: {}", rule_.client_id, call->attempt + 1, e.what());
      attempt_failed(std::move(call), e.what());
      call_ended();
      return;
    }
  }
  call->instance = std::move(slot);
  call->context.reset();
  call->reply.Clear();
  call->started = Clock::now();
  pool_.stats().started();
  Call* raw = call.release();
  pool_.call_async(*raw->instance, raw->context, raw->request, raw->reply,
                   [this, raw](grpc::Status status) {
                     on_reply(std::unique_ptr<Call>(raw), status);
                     pump();
                     call_ended();
                   });
}

void RuleRunner::call_ended() {
  // The last thing a gRPC thread does with this runner: stop() may return right after.
  std::lock_guard lock(mutex_);
  if (--calls_in_flight_ == 0) {
    calls_ended_.notify_all();
    changed_.notify_one();  // the dispatcher may have work only it can start now
  }
}

void RuleRunner::on_reply(std::unique_ptr<Call> call, const grpc::Status& status) {
  pool_.stats().ended(Clock::now() - call->started, status.ok());
  auto instance = std::move(call->instance);
  if (status.ok()) {
    pool_.release(std::move(instance), true);
    processed_.fetch_add(1);
    if (call->reply.payload().empty()) {
      finish(*call, Output::Kind::Ack);  // filtered: nothing to publish
    } else {
      finish(*call, Output::Kind::Publish, std::move(*call->reply.mutable_payload()));
    }
    return;
  }
  std::string error = std::string("rpc error: code = ") + code_name(status.error_code()) +
                      " desc = " + status.error_message();
  bool healthy = instance_answered(status.error_code());
  log_->warn("rule {}: attempt {} on {}: {}{}", rule_.client_id, call->attempt + 1,
             instance->name, error, healthy ? "" : " (instance discarded)");
  pool_.release(std::move(instance), healthy);
  attempt_failed(std::move(call), std::move(error));
}

void RuleRunner::attempt_failed(std::unique_ptr<Call> call, std::string error) {
  call->error = std::move(error);
  std::unique_lock lock(mutex_);
  if (stopping_) {
    lock.unlock();
    finish(*call, Output::Kind::Nothing);  // not acknowledged: handled again after a restart
    return;
  }
  if (call->attempt < rule_.retry_max) {
    ++call->attempt;
    auto due = Clock::now() + call->backoff;
    call->backoff = std::min(call->backoff * 2, pool_.config().backoff_max);
    retries_.emplace(due, std::move(call));
    changed_.notify_one();
    return;
  }
  lock.unlock();
  processed_.fetch_add(1);
  log_->error("rule {}: function {} failed: {}", rule_.client_id, rule_.function, call->error);
  finish(*call, Output::Kind::Publish,
         error_output(call->request, call->error, "*errors.Err").dump());
}

void RuleRunner::finish(Call& call, Output::Kind kind, std::string payload) {
  outputs_.complete(call.position, Output{kind, std::move(call.input), std::move(payload)});
}

void RuleRunner::emit(Output& output) {
  switch (output.kind) {
    case Output::Kind::Publish:
      publish(output.input, std::move(output.payload));
      break;
    case Output::Kind::Ack:
      client_->ack(output.input);
      break;
    case Output::Kind::Nothing:
      break;
  }
}

void RuleRunner::publish(const mqtt::Message& input, std::string payload) {
  mqtt::Publish output;
  output.topic = rule_.publish.topic;
  output.payload = std::move(payload);
  output.qos = static_cast<std::uint8_t>(
      std::min<int>(rule_.publish.qos, static_cast<int>(input.publish.qos)));
  try {
    if (output.qos == 0) {
      client_->async_publish(std::move(output));
      client_->ack(input);
      return;
    }
    auto* client = client_.get();
    client_->async_publish(std::move(output), [this, client, input](error_code ec) {
      if (!ec) {
        client->ack(input);
      } else if (ec.category() == mqtt::reason_category()) {
        refused(input, ec.message());
      }
      // Otherwise the client stopped first: the input stays unacknowledged and the hub sends it
      // again (as with MQTT 3.1.1).
    });
  } catch (const std::invalid_argument& e) {
    refused(input, e.what());  // e.g. larger than the hub's Maximum Packet Size
  }
}

// The hub (MQTT 5 PUBACK 0x80 or above) or the client (0x95, 0x9A, 0x9B) refused the output:
// the same output would be refused again, so retrying cannot help. As with MQTT 3.1.1, where the
// hub acknowledges and drops such a publish, the input is acknowledged; the loss is logged.
void RuleRunner::refused(const mqtt::Message& input, const std::string& why) {
  log_->error(
      "rule {}: the output of the message on {} was refused ({}): dropped, its input "
      "acknowledged",
      rule_.client_id, input.publish.topic, why);
  client_->ack(input);
}

}  // namespace baetyl::function
