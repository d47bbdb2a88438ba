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
  return code == grpc::StatusCode::UNKNOWN || code == grpc::StatusCode::INVALID_ARGUMENT ||
         code == grpc::StatusCode::NOT_FOUND || code == grpc::StatusCode::FAILED_PRECONDITION ||
         code == grpc::StatusCode::OUT_OF_RANGE || code == grpc::StatusCode::UNIMPLEMENTED;
}

}  // namespace

std::string base64_encode(const std::string& data) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    std::uint32_t v = (static_cast<std::uint8_t>(data[i]) << 16) |
                      (static_cast<std::uint8_t>(data[i + 1]) << 8) |
                      static_cast<std::uint8_t>(data[i + 2]);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += table[v & 63];
  }
  if (i < data.size()) {
    std::uint32_t v = static_cast<std::uint8_t>(data[i]) << 16;
    if (i + 1 < data.size()) v |= static_cast<std::uint8_t>(data[i + 1]) << 8;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < data.size() ? table[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

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
    : rule_(std::move(rule)), pool_(pool), client_(std::move(client)), log_(std::move(logger)) {}

RuleRunner::~RuleRunner() { stop(); }

void RuleRunner::start() {
  int workers = std::max(1, pool_.config().instance.max);
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { work(); });
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
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
    changed_.notify_all();
  }
  for (auto& w : workers_) w.join();
  workers_.clear();
  if (client_) client_->stop();
}

void RuleRunner::on_message(const mqtt::Message& message) {
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  if (message.publish.qos == 0) {
    if (queued_qos0_ >= kMaxQueuedQos0) {
      log_->warn("rule {}: {} QoS 0 messages waiting; dropping one on {}", rule_.client_id,
                 queued_qos0_, message.publish.topic);
      return;
    }
    ++queued_qos0_;
  }
  queue_.push_back(message);
  changed_.notify_one();
}

void RuleRunner::work() {
  while (true) {
    mqtt::Message message;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      message = std::move(queue_.front());
      queue_.pop_front();
      if (message.publish.qos == 0) --queued_qos0_;
    }
    try {
      handle(message);
    } catch (const std::exception& e) {
      // Not acknowledged: the hub sends a QoS 1 message again.
      log_->error("rule {}: message on {} not handled: {}", rule_.client_id, message.publish.topic,
                  e.what());
    }
  }
}

bool RuleRunner::sleep_for(std::chrono::milliseconds duration) {
  std::unique_lock lock(mutex_);
  return !changed_.wait_for(lock, duration, [&] { return stopping_; });
}

bool RuleRunner::invoke(const baetyl::FunctionMessage& request, baetyl::FunctionMessage& reply,
                        std::string& error, std::string& error_type) {
  std::chrono::milliseconds backoff(100);
  for (int attempt = 0; attempt <= rule_.retry_max; ++attempt) {
    if (attempt > 0) {
      if (!sleep_for(backoff)) break;
      backoff = std::min(backoff * 2, pool_.config().backoff_max);
    }
    std::shared_ptr<Instance> instance;
    try {
      instance = pool_.acquire(Clock::now() + pool_.config().timeout);
    } catch (const std::exception& e) {
      error = e.what();
      error_type = "*errors.Err";
      log_->warn("rule {}: attempt {}: {}", rule_.client_id, attempt + 1, error);
      continue;
    }
    reply.Clear();
    auto status = pool_.call(*instance, request, reply);
    if (status.ok()) {
      pool_.release(std::move(instance), true);
      return true;
    }
    error = std::string("rpc error: code = ") + code_name(status.error_code()) +
            " desc = " + status.error_message();
    error_type = "*errors.Err";
    bool healthy = instance_answered(status.error_code());
    log_->warn("rule {}: attempt {} on {}: {}{}", rule_.client_id, attempt + 1, instance->name,
               error, healthy ? "" : " (instance discarded)");
    pool_.release(std::move(instance), healthy);
  }
  return false;
}

void RuleRunner::handle(const mqtt::Message& message) {
  baetyl::FunctionMessage request;
  request.set_id(message.publish.packet_id);
  request.set_qos(message.publish.qos);
  request.set_topic(message.publish.topic);
  request.set_payload(message.publish.payload);
  request.set_timestamp(std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
  request.set_functionname(rule_.function);
  request.set_functioninvokeid(new_invoke_id());
  if (request.payload().size() > pool_.config().message_length_max.bytes) {
    publish(message, error_output(request,
                                  "message too long: " + std::to_string(request.payload().size()) +
                                      " bytes, message.length.max is " +
                                      std::to_string(pool_.config().message_length_max.bytes),
                                  "*errors.Err")
                         .dump());
    return;
  }
  baetyl::FunctionMessage reply;
  std::string error, error_type;
  if (invoke(request, reply, error, error_type)) {
    processed_.fetch_add(1);
    if (reply.payload().empty()) {
      client_->ack(message);  // filtered: nothing to publish
      return;
    }
    publish(message, std::move(*reply.mutable_payload()));
    return;
  }
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;  // not acknowledged: handled again after a restart
  }
  processed_.fetch_add(1);
  log_->error("rule {}: function {} failed: {}", rule_.client_id, rule_.function, error);
  publish(message, error_output(request, error, error_type).dump());
}

void RuleRunner::publish(const mqtt::Message& input, std::string payload) {
  mqtt::Publish output;
  output.topic = rule_.publish.topic;
  output.payload = std::move(payload);
  output.qos = static_cast<std::uint8_t>(
      std::min<int>(rule_.publish.qos, static_cast<int>(input.publish.qos)));
  if (output.qos == 0) {
    client_->async_publish(std::move(output));
    client_->ack(input);
    return;
  }
  auto* client = client_.get();
  client_->async_publish(std::move(output), [client, input](error_code ec) {
    if (!ec) client->ack(input);
  });
}

}  // namespace baetyl::function
