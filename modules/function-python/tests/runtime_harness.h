#pragma once
// Shared by the end-to-end tests of the Python and Node function runtimes: starts a real runtime
// in a temporary work directory on a free 127.0.0.1 port and calls it with a real C++ gRPC client,
// and holds the bodies of the tests both runtimes pass alike.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baetyl/testing/ports.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"
#include "baetyl/testing/tls.h"
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

// A file of the examples under example/native/var/db/baetyl (the walkthrough's handlers), so
// that the examples and the tests cannot drift apart; empty when it is missing.
inline std::string example_code(const std::string& file) {
  return read_text(std::filesystem::path(BAETYL_SOURCE_DIR) / "example/native/var/db/baetyl" /
                   file);
}

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

// Every field of `reply` but the payload comes back as `request` sent it.
inline void expect_fields_but_the_payload_as_sent(const FunctionMessage& request,
                                                  const FunctionMessage& reply) {
  EXPECT_EQ(reply.id(), request.id());
  EXPECT_EQ(reply.qos(), request.qos());
  EXPECT_EQ(reply.topic(), request.topic());
  EXPECT_EQ(reply.timestamp(), request.timestamp());
  EXPECT_EQ(reply.functionname(), request.functionname());
  EXPECT_EQ(reply.functioninvokeid(), request.functioninvokeid());
}

// With `wait_for_ready`, a connection or handshake that fails before the deadline is retried
// (a loaded machine may fail the first one) instead of failing the call at once.
inline grpc::Status call(Function::Stub& stub, const FunctionMessage& request,
                         FunctionMessage& reply,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10),
                         bool wait_for_ready = false) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  context.set_wait_for_ready(wait_for_ready);
  return stub.Call(&context, request, &reply);
}

// ---- CallStream (beyond v1): batches of calls on one stream, replies in order ----

struct StreamResult {
  std::vector<FunctionMessage> replies;
  std::string announced;          // the runtime's baetyl-call-stream metadata
  bool answers_inline = false;    // it sent baetyl-call-stream-inline
  std::size_t largest_batch = 0;  // bytes of the largest batch of replies
  grpc::Status status;
};

// Writes `requests` in batches of `batch_size` on a new stream (with `metadata` sent), closes
// the writing side and returns the replies, flattened, with the stream's end.
inline StreamResult call_stream(Function::Stub& stub, const std::vector<FunctionMessage>& requests,
                                int batch_size, std::map<std::string, std::string> metadata = {}) {
  StreamResult result;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  for (const auto& [key, value] : metadata) context.AddMetadata(key, value);
  auto stream = stub.CallStream(&context);
  stream->WaitForInitialMetadata();
  const auto& initial = context.GetServerInitialMetadata();
  if (auto announced = initial.find("baetyl-call-stream"); announced != initial.end()) {
    result.announced = std::string(announced->second.data(), announced->second.size());
  }
  result.answers_inline = initial.count("baetyl-call-stream-inline") > 0;
  FunctionMessages batch;
  for (const auto& request : requests) {
    *batch.add_messages() = request;
    if (batch.messages_size() == batch_size) {
      EXPECT_TRUE(stream->Write(batch));
      batch.Clear();
    }
  }
  if (batch.messages_size() > 0) {
    EXPECT_TRUE(stream->Write(batch));
  }
  stream->WritesDone();
  FunctionMessages received;
  while (stream->Read(&received)) {
    EXPECT_GT(received.messages_size(), 0) << "no empty reply batch";
    result.largest_batch = std::max(result.largest_batch, received.ByteSizeLong());
    for (const auto& reply : received.messages()) result.replies.push_back(reply);
  }
  result.status = stream->Finish();
  return result;
}

// ---- Test bodies shared by the Python and Node suites ----

// What the shared tests need to know about one runtime. Both suites lay out their code alike:
// var/db/baetyl/function-sayhi holds sayhi.handler and probe.{echo,slow} in the runtime's language.
struct RuntimeDescription {
  std::filesystem::path binary;
  std::function<void(const TempDir&)> write_code;
  // The service.yml the idle and cold start tests start with.
  std::string service_yml;
  // Start errors for the handlers 'missing.handler' and 'sayhi.nope'.
  std::string missing_module_error;
  std::string missing_function_error;
  // An event making probe.slow sleep 0.8 s, and its reply.
  std::string slow_event;
  nlohmann::json slow_reply;
  // A key of sayhi's reply to {"id":1}, and its value.
  std::string sayhi_reply_key;
  std::string sayhi_reply_value;

  std::string name() const { return binary.filename().string(); }
  std::vector<std::string> argv() const { return {binary.string()}; }
};

// The fixture of the tests that share one runtime, started once per suite by the suite's
// SetUpTestSuite with start_shared_runtime. The suite's class is `Suite`, so that each suite
// has a runtime of its own.
template <typename Suite>
class SharedRuntimeTest : public ::testing::Test {
 protected:
  // Starts `description`'s runtime serving `service_yml`, with BAETYL_TEST_VALUE set.
  static void start_shared_runtime(const RuntimeDescription& description,
                                   const std::string& service_yml) {
    dir_ = new TempDir();
    description.write_code(*dir_);
    dir_->write("etc/baetyl/service.yml", service_yml);
    runtime_ =
        new Runtime(description.argv(), dir_->path(), {{"BAETYL_TEST_VALUE", "from the test"}});
    ready_ = runtime_->wait_ready();
  }
  static void TearDownTestSuite() {
    delete runtime_;
    delete dir_;
  }
  void SetUp() override {
    ASSERT_TRUE(ready_) << "runtime not ready; its output:\n" << runtime_->output();
    stub_ = runtime_->stub();
  }

  nlohmann::json call_json(const std::string& function, const std::string& payload) {
    FunctionMessage reply;
    grpc::Status status = call(*stub_, make_message(function, payload), reply);
    EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
    return nlohmann::json::parse(reply.payload(), nullptr, false);
  }

  // `function` runs the walkthrough's index handler.
  void expect_walkthrough_index_with_dict_event(const std::string& function) {
    nlohmann::json result = call_json(function, R"({"id":1})");
    EXPECT_EQ(result, nlohmann::json({{"id", 1},
                                      {"messageQOS", 1},
                                      {"messageTopic", "t"},
                                      {"messageTimestamp", 1795635033},
                                      {"functionName", function},
                                      {"functionInvokeID", "50f8f102-2b8c-4904-86df-0728811a5a4b"},
                                      {"Say", "Hello Baetyl"}}));
  }

  // Returns the reply, for the suite's own checks.
  nlohmann::json expect_walkthrough_index_with_bytes_event(const std::string& function) {
    nlohmann::json result = call_json(function, "hello, not JSON");
    EXPECT_EQ(result["bytes"], "hello, not JSON");
    EXPECT_EQ(result["Say"], "Hello Baetyl");
    return result;
  }

  // Returns the error of the walkthrough's handler `function` for {"err":"bad id"}.
  std::string expect_walkthrough_error_is_a_grpc_error(const std::string& function) {
    FunctionMessage reply;
    grpc::Status status = call(*stub_, make_message(function, R"({"err":"bad id"})"), reply);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN);
    EXPECT_NE(status.error_message().find("TypeError: bad id"), std::string::npos)
        << status.error_message();
    // The runtime keeps serving.
    EXPECT_EQ(call_json(function, R"({"id":2})")["id"], 2);
    return status.error_message();
  }

  // `half_second_event` makes probe.slow take 0.5 s.
  void expect_four_slow_calls_overlap(const std::string& half_second_event) {
    using namespace std::chrono_literals;
    auto start = std::chrono::steady_clock::now();
    std::vector<std::future<bool>> calls;
    for (int i = 0; i < 4; ++i) {
      calls.push_back(std::async(std::launch::async, [&] {
        auto stub = runtime_->stub();
        FunctionMessage reply;
        return call(*stub, make_message("slow", half_second_event), reply).ok();
      }));
    }
    for (auto& c : calls) EXPECT_TRUE(c.get());
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms)
        << "four 0.5 s calls did not overlap";
  }

  void expect_context_has_the_documented_keys() {
    FunctionMessage request = make_message("context", "{}", "a/b", 0);
    request.set_functioninvokeid("invoke-7");
    request.set_timestamp(-5);
    FunctionMessage reply;
    ASSERT_TRUE(call(*stub_, request, reply).ok());
    EXPECT_EQ(nlohmann::json::parse(reply.payload()),
              nlohmann::json({{"messageQOS", 0},
                              {"messageTopic", "a/b"},
                              {"messageTimestamp", -5},
                              {"functionName", "context"},
                              {"functionInvokeID", "invoke-7"},
                              {"invokeid", "invoke-7"}}));
  }

  void expect_environment_is_available() {
    nlohmann::json result = call_json("environ", "{}");
    EXPECT_EQ(result["value"], "from the test");
    EXPECT_FALSE(result["path"].get<std::string>().empty());
  }

  void expect_result_encoding() {
    FunctionMessage reply;
    ASSERT_TRUE(call(*stub_, make_message("none", "{}"), reply).ok());
    EXPECT_EQ(reply.payload(), "");
    ASSERT_TRUE(call(*stub_, make_message("text", "{}"), reply).ok());
    EXPECT_EQ(reply.payload(), "plain text, not JSON");
    EXPECT_EQ(call_json("listing", "{}"), nlohmann::json::parse(R"([1,"two",{"three":3}])"));
  }

  void expect_unknown_function_is_an_error() {
    FunctionMessage reply;
    grpc::Status status = call(*stub_, make_message("nobody", "{}"), reply);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_NE(status.error_message().find("'nobody' not found"), std::string::npos)
        << status.error_message();
  }

  // `walkthrough_function` runs the walkthrough's index handler (which fails on {"err":...}).
  void expect_call_stream_answers_batches_in_order_with_errors_inline(
      const std::string& walkthrough_function) {
    std::vector<FunctionMessage> requests;
    for (int i = 0; i < 30; ++i) {
      FunctionMessage request = make_message("context", "{}");
      if (i == 7) request = make_message(walkthrough_function, R"({"err":"bad id"})");
      if (i == 11) request = make_message("nobody", "{}");
      request.set_functioninvokeid("call-" + std::to_string(i));
      requests.push_back(request);
    }
    StreamResult result = call_stream(*stub_, requests, 4);
    EXPECT_TRUE(result.status.ok()) << result.status.error_message();
    EXPECT_EQ(result.announced, std::to_string(4 << 20)) << "its message.length.max";
    ASSERT_EQ(result.replies.size(), requests.size());
    for (int i = 0; i < 30; ++i) {
      const FunctionMessage& reply = result.replies[static_cast<std::size_t>(i)];
      EXPECT_EQ(reply.functioninvokeid(), "call-" + std::to_string(i));
      if (i == 7) {
        EXPECT_EQ(reply.errorcode(), static_cast<std::uint32_t>(grpc::StatusCode::UNKNOWN));
        EXPECT_NE(reply.errormessage().find("TypeError: bad id"), std::string::npos)
            << reply.errormessage();
      } else if (i == 11) {
        EXPECT_EQ(reply.errorcode(), static_cast<std::uint32_t>(grpc::StatusCode::NOT_FOUND));
        EXPECT_NE(reply.errormessage().find("'nobody' not found"), std::string::npos);
      } else {
        EXPECT_EQ(reply.errorcode(), 0u) << reply.errormessage();
        EXPECT_EQ(nlohmann::json::parse(reply.payload())["functionInvokeID"],
                  "call-" + std::to_string(i));
      }
    }
  }

  // `half_second_event` makes probe.slow take 0.5 s and answer `reply`.
  void expect_call_stream_runs_a_batch_concurrently(const std::string& half_second_event,
                                                    const nlohmann::json& reply) {
    using namespace std::chrono_literals;
    std::vector<FunctionMessage> requests(4, make_message("slow", half_second_event));
    auto start = std::chrono::steady_clock::now();
    StreamResult result = call_stream(*stub_, requests, 4);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms)
        << "four 0.5 s calls in one batch";
    ASSERT_EQ(result.replies.size(), 4u);
    for (const auto& r : result.replies) EXPECT_EQ(nlohmann::json::parse(r.payload()), reply);
  }

  // A reply larger than the client's bound fails alone; the batches of replies stay within it.
  void expect_call_stream_keeps_replies_within_the_clients_bound() {
    const std::string pad(300, 'x');
    std::vector<FunctionMessage> requests;
    for (int i = 0; i < 12; ++i) {
      requests.push_back(make_message("echo", R"({"pad":")" + pad + R"("})"));
    }
    requests.push_back(make_message("echo", R"({"pad":")" + std::string(3000, 'y') + R"("})"));
    StreamResult result =
        call_stream(*stub_, requests, 13, {{"baetyl-call-stream-reply-bytes", "2000"}});
    EXPECT_TRUE(result.status.ok()) << result.status.error_message();
    EXPECT_LE(result.largest_batch, 2000u);
    ASSERT_EQ(result.replies.size(), 13u);
    for (int i = 0; i < 12; ++i) EXPECT_EQ(result.replies[i].errorcode(), 0u);
    EXPECT_EQ(result.replies[12].errorcode(),
              static_cast<std::uint32_t>(grpc::StatusCode::RESOURCE_EXHAUSTED));
    EXPECT_NE(result.replies[12].errormessage().find("larger than the client takes (2000)"),
              std::string::npos)
        << result.replies[12].errormessage();
  }

  static inline TempDir* dir_ = nullptr;
  static inline Runtime* runtime_ = nullptr;
  static inline std::optional<std::chrono::milliseconds> ready_;
  std::unique_ptr<Function::Stub> stub_;
};

struct StartedRuntime {
  TempDir dir;
  std::unique_ptr<Runtime> runtime;
};

inline std::unique_ptr<StartedRuntime> start(const RuntimeDescription& description,
                                             const std::string& service_yml,
                                             std::map<std::string, std::string> env = {}) {
  auto started = std::make_unique<StartedRuntime>();
  description.write_code(started->dir);
  started->dir.write("etc/baetyl/service.yml", service_yml);
  started->runtime = std::make_unique<Runtime>(description.argv(), started->dir.path(), env);
  return started;
}

// Starts a runtime that must fail at start; returns its output after checking exit code 1.
inline std::string start_failure(const RuntimeDescription& description,
                                 const std::string& service_yml) {
  auto started = start(description, service_yml);
  auto code = started->runtime->process().wait(std::chrono::seconds(10));
  EXPECT_EQ(code, std::optional<int>(1)) << started->runtime->output();
  return started->runtime->output();
}

inline void expect_logs_in_the_format_of_the_cpp_modules(const std::string& output) {
  // 2026-11-25 19:30:33.123 [info] message
  auto line_start = output.find("[info] listening on 127.0.0.1:");
  ASSERT_NE(line_start, std::string::npos) << output;
  ASSERT_GE(line_start, 24u);
  std::string stamp = output.substr(line_start - 24, 24);
  EXPECT_EQ(stamp[4], '-');
  EXPECT_EQ(stamp[10], ' ');
  EXPECT_EQ(stamp[19], '.');
  EXPECT_EQ(stamp[23], ' ');
}

inline void expect_bad_handlers_are_reported_at_start(const RuntimeDescription& description) {
  const std::string head = "functions:\n  - name: f\n    codedir: var/db/baetyl/function-sayhi\n";
  std::string output = start_failure(description, head + "    handler: nodot\n");
  EXPECT_NE(output.find("etc/baetyl/service.yml: functions[0].handler: 'nodot' is not of the form "
                        "module.function"),
            std::string::npos)
      << output;
  output = start_failure(description, head + "    handler: missing.handler\n");
  EXPECT_NE(output.find(description.missing_module_error), std::string::npos) << output;
  output = start_failure(description, head + "    handler: sayhi.nope\n");
  EXPECT_NE(output.find("functions[0].handler: module 'sayhi'"), std::string::npos) << output;
  EXPECT_NE(output.find(description.missing_function_error), std::string::npos) << output;
}

// The configuration errors both runtimes report in the same words.
inline void expect_bad_codedir_is_reported_at_start(const RuntimeDescription& description) {
  std::string output =
      start_failure(description, "functions:\n  - name: f\n    handler: sayhi.handler\n");
  EXPECT_NE(output.find("functions[0].codedir: is required"), std::string::npos) << output;
  output = start_failure(
      description, "functions:\n  - name: f\n    handler: sayhi.handler\n    codedir: nowhere\n");
  EXPECT_NE(output.find("functions[0].codedir:"), std::string::npos) << output;
  EXPECT_NE(output.find("is not a directory"), std::string::npos) << output;
}

inline void expect_missing_config_file_is_reported(const RuntimeDescription& description) {
  TempDir dir;
  Runtime runtime(description.argv(), dir.path());
  EXPECT_EQ(runtime.process().wait(std::chrono::seconds(10)), std::optional<int>(1));
  EXPECT_NE(runtime.output().find("etc/baetyl/service.yml: no such file"), std::string::npos)
      << runtime.output();
}

inline void expect_messages_above_the_length_limit_are_rejected(
    const RuntimeDescription& description) {
  auto started = start(description,
                       "server:\n  message:\n    length:\n      max: 1k\nfunctions:\n"
                       "  - name: echo\n    handler: probe.echo\n"
                       "    codedir: var/db/baetyl/function-sayhi\n");
  ASSERT_TRUE(started->runtime->wait_ready()) << started->runtime->output();
  auto stub = started->runtime->stub();
  FunctionMessage reply;
  ASSERT_TRUE(call(*stub, make_message("echo", std::string(900, 'a')), reply).ok());
  EXPECT_EQ(reply.payload().size(), 900u);
  grpc::Status status = call(*stub, make_message("echo", std::string(2048, 'a')), reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
}

inline void expect_sigterm_finishes_the_call_in_flight_and_exits_zero(
    const RuntimeDescription& description) {
  using namespace std::chrono_literals;
  auto started = start(description,
                       "functions:\n  - name: slow\n    handler: probe.slow\n"
                       "    codedir: var/db/baetyl/function-sayhi\n");
  ASSERT_TRUE(started->runtime->wait_ready()) << started->runtime->output();
  auto in_flight = std::async(std::launch::async, [&] {
    auto stub = started->runtime->stub();
    FunctionMessage reply;
    grpc::Status status = call(*stub, make_message("slow", description.slow_event), reply);
    return status.ok() ? reply.payload() : "error: " + status.error_message();
  });
  // SIGTERM once the call is in the handler (which marks it in the work directory): a fixed
  // delay let a loaded machine signal before the call had even reached the runtime.
  const auto marker = started->dir.path() / "slow.started";
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while (!std::filesystem::exists(marker) && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(std::filesystem::exists(marker)) << started->runtime->output();
  auto signalled = std::chrono::steady_clock::now();
  int code = started->runtime->process().stop(SIGTERM, 10s);
  auto took = std::chrono::steady_clock::now() - signalled;
  EXPECT_EQ(code, 0) << started->runtime->output();
  EXPECT_EQ(nlohmann::json::parse(in_flight.get(), nullptr, false), description.slow_reply);
  EXPECT_LT(took, 3s);
  EXPECT_NE(started->runtime->output().find(description.name() + " stopped"), std::string::npos);
}

inline void expect_sigterm_when_idle_exits_promptly(const RuntimeDescription& description) {
  using namespace std::chrono_literals;
  auto started = start(description, description.service_yml);
  ASSERT_TRUE(started->runtime->wait_ready()) << started->runtime->output();
  auto signalled = std::chrono::steady_clock::now();
  EXPECT_EQ(started->runtime->process().stop(SIGTERM, 10s), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, 1s);
}

// A stream kept open by its client does not hold the stop up: once nothing runs, it is ended.
inline void expect_sigterm_with_an_open_call_stream_exits_promptly(
    const RuntimeDescription& description) {
  using namespace std::chrono_literals;
  auto started = start(description, description.service_yml);
  ASSERT_TRUE(started->runtime->wait_ready()) << started->runtime->output();
  auto stub = started->runtime->stub();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 30s);
  auto stream = stub->CallStream(&context);
  FunctionMessages batch;
  *batch.add_messages() = make_message("sayhi", R"({"id":1})");
  ASSERT_TRUE(stream->Write(batch));
  FunctionMessages replies;
  ASSERT_TRUE(stream->Read(&replies));
  ASSERT_EQ(replies.messages_size(), 1);
  auto signalled = std::chrono::steady_clock::now();
  EXPECT_EQ(started->runtime->process().stop(SIGTERM, 10s), 0) << started->runtime->output();
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, 2s);
  EXPECT_FALSE(stream->Read(&replies)) << "the stream ended";
  stream->Finish();
}

inline void expect_cold_start_until_the_first_call(const RuntimeDescription& description) {
  std::vector<long> samples;
  for (int i = 0; i < 5; ++i) {
    auto started = start(description, description.service_yml);
    auto ready = started->runtime->wait_ready();
    ASSERT_TRUE(ready) << started->runtime->output();
    samples.push_back(ready->count());
  }
  std::sort(samples.begin(), samples.end());
  std::printf(
      "%s cold start (spawn to first answered call), 5 runs: "
      "min %ld ms, median %ld ms, max %ld ms (target 300 ms)\n",
      description.name().c_str(), samples.front(), samples[2], samples.back());
  ::testing::Test::RecordProperty("cold_start_median_ms", static_cast<int>(samples[2]));
  // Generous bound for a loaded CI machine; the figure above is what matters.
  EXPECT_LT(samples[2], 3000);
}

inline void expect_tls_with_client_certificates(const RuntimeDescription& description) {
  TempDir pki_dir;
  TestPki pki = make_test_pki(pki_dir.path());
  auto started = start(description,
                       "server:\n  ca: " + pki.ca.string() + "\n  key: " + pki.server_key.string() +
                           "\n  cert: " + pki.server_cert.string() +
                           "\nfunctions:\n  - name: sayhi\n    handler: sayhi.handler\n"
                           "    codedir: var/db/baetyl/function-sayhi\n");
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = read_text(pki.ca);
  options.pem_cert_chain = read_text(pki.client_cert);
  options.pem_private_key = read_text(pki.client_key);
  auto stub = Function::NewStub(started->runtime->channel(grpc::SslCredentials(options)));
  ASSERT_TRUE(wait_for_port(started->runtime->port())) << started->runtime->output();
  FunctionMessage reply;
  grpc::Status status = call(*stub, make_message("sayhi", R"({"id":1})"), reply,
                             std::chrono::seconds(10), /*wait_for_ready=*/true);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << started->runtime->output();
  EXPECT_EQ(nlohmann::json::parse(reply.payload())[description.sayhi_reply_key],
            description.sayhi_reply_value);

  // Without a client certificate the handshake fails.
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = read_text(pki.ca);
  auto anonymous = Function::NewStub(started->runtime->channel(grpc::SslCredentials(no_cert)));
  EXPECT_FALSE(
      call(*anonymous, make_message("sayhi", R"({"id":1})"), reply, std::chrono::seconds(2)).ok());
}

}  // namespace baetyl::testing
