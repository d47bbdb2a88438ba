#pragma once
// Shared by the end-to-end tests of the Python and Node function runtimes: starts a real runtime
// in a temporary work directory on a free 127.0.0.1 port and calls it with a real C++ gRPC client.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "baetyl/testing/ports.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"
#include "function.grpc.pb.h"

namespace baetyl::testing {

// A runtime started with `argv` in `work_dir` (which holds etc/baetyl/service.yml and the code),
// told its address through BAETYL_SERVICE_INSTANCE_ADDRESS, as the function manager does.
class Runtime {
 public:
  Runtime(std::vector<std::string> argv, const std::filesystem::path& work_dir,
          std::map<std::string, std::string> env = {})
      : port_(free_port()), log_(work_dir / "runtime.out") {
    env["BAETYL_SERVICE_INSTANCE_ADDRESS"] = address();
    ProcessOptions options;
    options.working_dir = work_dir.string();
    options.env = std::move(env);
    options.output_file = log_.string();
    started_ = std::chrono::steady_clock::now();
    process_ = std::make_unique<Process>(std::move(argv), options);
  }

  std::uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  Process& process() { return *process_; }
  std::string output() const { return process_->output(); }

  // A channel that redials every 10 ms: readiness is measured, not gRPC's reconnect backoff.
  std::shared_ptr<grpc::Channel> channel(
      std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials(),
      grpc::ChannelArguments args = {}) const {
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 10);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 10);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 50);
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    return grpc::CreateCustomChannel(address(), credentials, args);
  }
  std::unique_ptr<Function::Stub> stub() const { return Function::NewStub(channel()); }

  // Time from the spawn to the first answered call (any answer but UNAVAILABLE or a deadline:
  // the probe names no function, so a ready runtime answers NOT_FOUND). nullopt when the runtime
  // exited or did not answer within `timeout`.
  std::optional<std::chrono::milliseconds> wait_ready(
      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    auto stub = this->stub();
    auto deadline = started_ + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!process_->running()) return std::nullopt;
      grpc::ClientContext context;
      context.set_wait_for_ready(true);
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
      FunctionMessage probe, reply;
      probe.set_functionname("");
      grpc::Status status = stub->Call(&context, probe, &reply);
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
          status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - started_);
      }
    }
    return std::nullopt;
  }

 private:
  std::uint16_t port_;
  std::filesystem::path log_;
  std::chrono::steady_clock::time_point started_;
  std::unique_ptr<Process> process_;
};

inline FunctionMessage make_message(std::string function, std::string payload,
                                    std::string topic = "t", std::uint32_t qos = 1) {
  FunctionMessage message;
  message.set_id(42);
  message.set_qos(qos);
  message.set_topic(std::move(topic));
  message.set_payload(std::move(payload));
  message.set_timestamp(1795635033);
  message.set_functionname(std::move(function));
  message.set_functioninvokeid("50f8f102-2b8c-4904-86df-0728811a5a4b");
  return message;
}

inline grpc::Status call(Function::Stub& stub, const FunctionMessage& request,
                         FunctionMessage& reply,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  return stub.Call(&context, request, &reply);
}

}  // namespace baetyl::testing
