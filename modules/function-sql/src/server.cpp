#include "server.h"

#include <deque>
#include <fstream>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <absl/synchronization/mutex.h>
#include <grpc/grpc.h>

#include "baetyl/env.h"

namespace baetyl::sql {
namespace {

constexpr auto kShutdownGrace = std::chrono::milliseconds(500);

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + what + " file '" + path + "'");
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::shared_ptr<grpc::ServerCredentials> credentials(const ServerConfig& c) {
  if (c.cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      c.ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                   : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!c.ca.empty()) options.pem_root_certs = read_file(c.ca, "server.ca");
  options.pem_key_cert_pairs.push_back(
      {read_file(c.key, "server.key"), read_file(c.cert, "server.cert")});
  return grpc::SslServerCredentials(options);
}

}  // namespace

void describe(config::Reader& r, ServerConfig& c) {
  r.field("address", c.address).not_empty();
  r.section("workers", [&](config::Reader& s) { s.field("max", c.workers_max).min(1); });
  r.section("concurrent", [&](config::Reader& s) { s.field("max", c.concurrent_max); });
  r.section("message", [&](config::Reader& s) {
    s.section("length", [&](config::Reader& l) {
      l.field("max", c.message_length_max)
          .min(config::ByteSize{1})
          .max(config::ByteSize{std::numeric_limits<int>::max()});
    });
  });
  r.field("ca", c.ca);
  r.field("key", c.key);
  r.field("cert", c.cert);
  r.check(c.key.empty() == c.cert.empty(), c.key.empty() ? "key" : "cert",
          "server.key and server.cert go together");
  r.check(c.ca.empty() || !c.cert.empty(), "ca", "needs server.key and server.cert");
}

void describe(config::Reader& r, FunctionConfig& c) {
  r.field("name", c.name).required().not_empty();
  auto handler = r.field("handler", c.handler).required().not_empty();
  if (handler.present() && !c.handler.empty()) {
    try {
      Query::parse(c.handler);
    } catch (const SqlError& e) {
      r.error("handler", e.what());
    }
  }
}

void describe(config::Reader& r, RuntimeConfig& c) {
  r.field("server", c.server);
  r.field("functions", c.functions).required().not_empty();
  std::set<std::string> names;
  for (std::size_t i = 0; i < c.functions.size(); ++i) {
    const std::string& name = c.functions[i].name;
    if (!name.empty() && !names.insert(name).second) {
      r.error("functions[" + std::to_string(i) + "].name",
              "duplicate function name '" + name + "'");
    }
  }
}

FunctionService::FunctionService(const std::vector<FunctionConfig>& functions,
                                 std::size_t message_length_max)
    : message_length_max_(message_length_max) {
  for (const auto& f : functions) {
    queries_.insert_or_assign(f.name, Query::parse(f.handler));
    names_ += (names_.empty() ? "" : ", ") + f.name;
  }
}

grpc::ServerUnaryReactor* FunctionService::Call(grpc::CallbackServerContext* context,
                                                const FunctionMessage* request,
                                                FunctionMessage* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(handle(*request, *reply));
  return reactor;
}

namespace {

// A batch of replies grows to about this size before the next one is started, unless the client
// takes less ("baetyl-call-stream-reply-bytes").
constexpr std::size_t kReplyBatchBytes = 256 * 1024;
// The bytes a message adds to a batch besides its own: its field tag and length.
constexpr std::size_t kBatchEntryOverhead = 6;

// The client's bound on a batch of replies (its largest received message), if it sent one; a
// value beyond size_t (32 bits on armhf) is no bound.
std::size_t client_reply_bytes(const grpc::CallbackServerContext& context) {
  constexpr std::size_t kNoBound = std::numeric_limits<std::size_t>::max();
  const auto& metadata = context.client_metadata();
  auto found = metadata.find("baetyl-call-stream-reply-bytes");
  if (found == metadata.end()) return kNoBound;
  try {
    const unsigned long long bytes =
        std::stoull(std::string(found->second.data(), found->second.size()));
    return bytes > kNoBound ? kNoBound : static_cast<std::size_t>(bytes);
  } catch (const std::exception&) {
    return kNoBound;
  }
}

// Reads batches of requests one after another and writes their replies in the same order, one
// write in flight at a time: replies evaluated meanwhile go out together in the next write.
// Finishes once the client has closed its side and every reply is written.
class CallStreamReactor final
    : public grpc::ServerBidiReactor<FunctionMessages, FunctionMessages> {
 public:
  CallStreamReactor(grpc::CallbackServerContext* context, const FunctionService& service)
      : service_(service),
        reply_limit_(client_reply_bytes(*context)),
        batch_bytes_(std::min(kReplyBatchBytes, reply_limit_)) {
    // Tells the client at once that this runtime serves CallStream, and how large a batch of
    // requests may be.
    context->AddInitialMetadata("baetyl-call-stream", std::to_string(service.message_length_max()));
    // Calls are evaluated as they are read, in microseconds: no need to spread them.
    context->AddInitialMetadata("baetyl-call-stream-inline", "1");
    StartSendInitialMetadata();
    StartRead(&requests_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::lock_guard lock(mutex_);
      reading_ = false;
      finish_if_done_locked();
      return;
    }
    const auto count = static_cast<std::size_t>(requests_.messages_size());
    std::vector<FunctionMessage> replies(count);
    std::vector<std::size_t> sizes(count);  // in a batch, with kBatchEntryOverhead
    for (std::size_t i = 0; i < count; ++i) {
      const FunctionMessage& request = requests_.messages(static_cast<int>(i));
      FunctionMessage& reply = replies[i];
      grpc::Status status = service_.handle(request, reply);
      std::size_t size = reply.ByteSizeLong();
      if (status.ok() && size + kBatchEntryOverhead > reply_limit_) {
        status = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              "reply of " + std::to_string(size) +
                                  " bytes is larger than the client takes (" +
                                  std::to_string(reply_limit_) + ")");
        reply.Clear();
      }
      if (!status.ok()) {
        reply.set_functioninvokeid(request.functioninvokeid());
        reply.set_errorcode(static_cast<std::uint32_t>(status.error_code()));
        reply.set_errormessage(status.error_message());
        size = reply.ByteSizeLong();
      }
      sizes[i] = size + kBatchEntryOverhead;
    }
    {
      std::lock_guard lock(mutex_);
      for (std::size_t i = 0; i < count; ++i) queue_locked(std::move(replies[i]), sizes[i]);
      if (!writing_ && !batches_.empty()) {
        writing_ = true;
        StartWrite(&batches_.front().messages);
      }
    }
    StartRead(&requests_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mutex_);
    batches_.pop_front();
    if (!ok) {
      // The client is gone: nothing more can be written.
      failed_ = true;
      writing_ = false;
      finish_if_done_locked();
      return;
    }
    if (!batches_.empty()) {
      StartWrite(&batches_.front().messages);
    } else {
      writing_ = false;
      finish_if_done_locked();
    }
  }

  void OnDone() override { delete this; }

 private:
  struct Batch {
    FunctionMessages messages;
    std::size_t bytes = 0;
  };

  // Into the last batch not being written, unless that one is full. `bytes`: its size in a batch.
  void queue_locked(FunctionMessage reply, std::size_t bytes) {
    const bool last_is_written = writing_ && batches_.size() == 1;
    if (batches_.empty() || last_is_written || batches_.back().bytes + bytes > batch_bytes_) {
      batches_.emplace_back();
    }
    Batch& batch = batches_.back();
    *batch.messages.add_messages() = std::move(reply);
    batch.bytes += bytes;
  }

  void finish_if_done_locked() {
    if (reading_ || writing_ || finished_) return;
    finished_ = true;
    Finish(failed_ ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "client went away")
                   : grpc::Status::OK);
  }

  const FunctionService& service_;
  const std::size_t reply_limit_;
  const std::size_t batch_bytes_;
  FunctionMessages requests_;
  std::mutex mutex_;
  std::deque<Batch> batches_;  // front: being written while writing_ (references stay valid)
  bool reading_ = true;
  bool writing_ = false;
  bool failed_ = false;
  bool finished_ = false;
};

}  // namespace

grpc::ServerBidiReactor<FunctionMessages, FunctionMessages>* FunctionService::CallStream(
    grpc::CallbackServerContext* context) {
  return new CallStreamReactor(context, *this);
}

grpc::Status FunctionService::handle(const FunctionMessage& request, FunctionMessage& reply) const {
  auto it = queries_.find(request.functionname());
  if (it == queries_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "function '" + request.functionname() +
                            "' not found (this runtime serves: " + names_ + ")");
  }
  Message message{.qos = request.qos(),
                  .topic = request.topic(),
                  .timestamp = request.timestamp(),
                  .function_name = request.functionname(),
                  .invoke_id = request.functioninvokeid()};
  std::string payload;
  try {
    payload = it->second.run(request.payload(), message);
  } catch (const PayloadError& e) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, e.what());
  } catch (const std::exception& e) {
    return grpc::Status(grpc::StatusCode::INTERNAL, e.what());
  }
  reply.set_id(request.id());
  reply.set_qos(request.qos());
  reply.set_topic(request.topic());
  reply.set_timestamp(request.timestamp());
  reply.set_functionname(request.functionname());
  reply.set_functioninvokeid(request.functioninvokeid());
  reply.set_payload(std::move(payload));
  return grpc::Status::OK;
}

std::string listen_address(const std::string& configured) {
  std::string address = env::get_or(env::kServiceInstanceAddress, configured);
  if (address.starts_with("tcp://")) address.erase(0, 6);
  return address;
}

void run_runtime(Context& ctx) {
  // Debian's abseil checks every mutex gRPC takes for lock-order cycles (a debug aid costing
  // several percent of the CPU per call).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto config = ctx.load_config<RuntimeConfig>();
  const ServerConfig& sc = config.server;
  int length = static_cast<int>(sc.message_length_max.bytes);
  FunctionService service(config.functions, static_cast<std::size_t>(length));

  std::string address = listen_address(sc.address);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, credentials(sc), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(length);
  builder.SetMaxSendMessageSize(length);
  if (sc.concurrent_max > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               static_cast<int>(sc.concurrent_max));
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) throw std::runtime_error("cannot listen on '" + address + "'");
  ctx.log().info("serving {} function(s) on {} ({})", config.functions.size(), address,
                 sc.cert.empty() ? "plain"
                 : sc.ca.empty() ? "TLS"
                                 : "TLS, client certificates");
  for (const auto& f : config.functions) ctx.log().info("function '{}': {}", f.name, f.handler);
  if (config.server.workers_max != 0) {
    ctx.log().warn(
        "server.workers.max ({}) has no effect here: calls are evaluated on gRPC's threads in "
        "microseconds; server.concurrent.max bounds the calls in flight",
        config.server.workers_max);
  }

  ctx.wait();
  ctx.log().info("stopping: finishing calls in flight");
  // Shutdown waits until the deadline for connections that stay open, even idle ones (a client
  // keeps its channel): a call here is answered in microseconds, so a short grace finishes every
  // call in flight without holding the stop up.
  server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  server->Wait();
}

}  // namespace baetyl::sql
