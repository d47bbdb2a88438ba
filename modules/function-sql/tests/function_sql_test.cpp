// The real baetyl-function-sql binary on a free loopback port, called with the generated C++ stub.
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baetyl/testing/ports.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"
#include "baetyl/testing/tls.h"
#include "function.grpc.pb.h"

namespace baetyl {
namespace {

using namespace std::chrono_literals;

const char* kWalkthrough = R"(functions:
  - name: sql-filter
    handler: 'select qos() as qos, topic() as topic, * where id < 10'
)";

// The runtime as a child process with `config` as etc/baetyl/service.yml in its working directory.
class Runtime {
 public:
  explicit Runtime(const std::string& config, bool address_from_env = true)
      : port_(testing::free_port()) {
    std::string text = config;
    auto at = text.find("{port}");
    if (at != std::string::npos) text.replace(at, 6, std::to_string(port_));
    dir_.write("etc/baetyl/service.yml", text);
    testing::ProcessOptions options;
    options.working_dir = dir_.path().string();
    options.output_file = (dir_.path() / "output.log").string();
    if (address_from_env) {
      options.env["BAETYL_SERVICE_INSTANCE_ADDRESS"] = "127.0.0.1:" + std::to_string(port_);
    }
    process_ = std::make_unique<testing::Process>(
        std::vector<std::string>{testing::binary_path("baetyl-function-sql")}, options);
  }

  // Waits until the runtime listens (false if it exited or did not within 10 s).
  bool ready() {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!process_->running()) return false;
      if (testing::wait_for_port(port_, 100ms)) return true;
    }
    return false;
  }

  std::unique_ptr<Function::Stub> stub(std::shared_ptr<grpc::ChannelCredentials> credentials =
                                           grpc::InsecureChannelCredentials()) const {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    return Function::NewStub(grpc::CreateCustomChannel(address(), credentials, args));
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  testing::Process& process() { return *process_; }
  std::string output() const { return process_->output(); }
  const testing::TempDir& dir() const { return dir_; }

 private:
  testing::TempDir dir_;
  std::uint16_t port_;
  std::unique_ptr<testing::Process> process_;
};

grpc::Status call(Function::Stub& stub, const FunctionMessage& request, FunctionMessage& reply) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 10s);
  return stub.Call(&context, request, &reply);
}

FunctionMessage message(const std::string& payload, const std::string& function = "sql-filter") {
  FunctionMessage m;
  m.set_id(42);
  m.set_qos(1);
  m.set_topic("t");
  m.set_payload(payload);
  m.set_timestamp(1795635033);
  m.set_functionname(function);
  m.set_functioninvokeid("6f1c3a52-95e9-4e32-9b2c-0d7a1c0e4b77");
  return m;
}

TEST(FunctionSqlTest, DocsWalkthrough) {
  Runtime runtime(kWalkthrough);
  ASSERT_TRUE(runtime.ready()) << runtime.output();
  auto stub = runtime.stub();

  FunctionMessage reply;
  grpc::Status status = call(*stub, message(R"({"id":1})"), reply);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << runtime.output();
  EXPECT_EQ(reply.payload(), R"({"qos":1,"topic":"t","id":1})");
  EXPECT_EQ(reply.id(), 42u);
  EXPECT_EQ(reply.qos(), 1u);
  EXPECT_EQ(reply.topic(), "t");
  EXPECT_EQ(reply.timestamp(), 1795635033);
  EXPECT_EQ(reply.functionname(), "sql-filter");
  EXPECT_EQ(reply.functioninvokeid(), "6f1c3a52-95e9-4e32-9b2c-0d7a1c0e4b77");

  FunctionMessage filtered;
  status = call(*stub, message(R"({"id":20})"), filtered);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(filtered.payload(), "");
  EXPECT_EQ(filtered.id(), 42u);
  EXPECT_EQ(filtered.functionname(), "sql-filter");

  // The QoS and topic of each message.
  FunctionMessage qos0 = message(R"({"id":3,"v":[1,2]})");
  qos0.set_qos(0);
  qos0.set_topic("sensors/a");
  status = call(*stub, qos0, reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(reply.payload(), R"({"qos":0,"topic":"sensors/a","id":3,"v":[1,2]})");

  EXPECT_EQ(runtime.process().stop(SIGTERM), 0) << runtime.output();
}

TEST(FunctionSqlTest, SeveralFunctionsSelectedByName) {
  Runtime runtime(R"(functions:
  - name: double
    handler: select id * 2 as id
  - name: names
    handler: "select upper(name) as name, function_name() as f, invoke_id() as i,
              timestamp() as ts from t where name like 'a%'"
)");
  ASSERT_TRUE(runtime.ready()) << runtime.output();
  auto stub = runtime.stub();
  FunctionMessage reply;
  ASSERT_TRUE(call(*stub, message(R"({"id":21})", "double"), reply).ok());
  EXPECT_EQ(reply.payload(), R"({"id":42})");
  FunctionMessage request = message(R"({"name":"abc"})", "names");
  request.set_functioninvokeid("inv-1");
  ASSERT_TRUE(call(*stub, request, reply).ok());
  EXPECT_EQ(reply.payload(), R"({"name":"ABC","f":"names","i":"inv-1","ts":1795635033})");
  ASSERT_TRUE(call(*stub, message(R"({"name":"xyz"})", "names"), reply).ok());
  EXPECT_EQ(reply.payload(), "");
}

TEST(FunctionSqlTest, ErrorsAreGrpcStatuses) {
  Runtime runtime(kWalkthrough);
  ASSERT_TRUE(runtime.ready()) << runtime.output();
  auto stub = runtime.stub();
  FunctionMessage reply;

  grpc::Status status = call(*stub, message(R"({"id":1})", "nope"), reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "function 'nope' not found (this runtime serves: sql-filter)");

  status = call(*stub, message("hello"), reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(status.error_message().starts_with("payload is not valid JSON: parse error"))
      << status.error_message();

  status = call(*stub, message("[1,2]"), reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "payload is JSON but not an object (it is an array); the query needs a JSON object");

  // A number beyond a double is the payload's fault, not the runtime's.
  status = call(*stub, message(R"({"id":1e400})"), reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "payload is not valid JSON: number overflow parsing '1e400'");

  // 100,000 levels of arrays (200 KB), copied by `*`, overflowed the stack of the runtime.
  const std::string deep =
      R"({"id":1,"x":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  status = call(*stub, message(deep), reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "payload is nested too deeply (more than 1000 levels of arrays and objects)");

  // The server keeps serving after errors.
  status = call(*stub, message(R"({"id":2})"), reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(reply.payload(), R"({"qos":1,"topic":"t","id":2})");
}

// A CallStream on `stub` that must end within `timeout`.
std::unique_ptr<grpc::ClientReaderWriter<FunctionMessages, FunctionMessages>> open_call_stream(
    Function::Stub& stub, grpc::ClientContext& context, std::chrono::seconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  return stub.CallStream(&context);
}

// CallStream: requests in batches, one reply per request in order (in batches of the runtime's
// choosing); errors as ErrorCode/ErrorMessage; the runtime announces it in its initial metadata,
// before any reply.
TEST(FunctionSqlTest, CallStreamAnswersEveryRequestInOrder) {
  Runtime runtime(kWalkthrough);
  ASSERT_TRUE(runtime.ready()) << runtime.output();
  auto stub = runtime.stub();
  grpc::ClientContext context;
  auto stream = open_call_stream(*stub, context, 10s);
  stream->WaitForInitialMetadata();
  const auto& announced = context.GetServerInitialMetadata();
  ASSERT_EQ(announced.count("baetyl-call-stream"), 1u);
  EXPECT_EQ(announced.find("baetyl-call-stream")->second, std::to_string(4 << 20))
      << "its server.message.length.max";
  EXPECT_EQ(announced.count("baetyl-call-stream-inline"), 1u) << "it answers as it reads";

  constexpr int kMessages = 200;
  FunctionMessages batch;
  int batch_size = 1;
  for (int i = 0; i < kMessages; ++i) {
    FunctionMessage request = message(R"({"id":)" + std::to_string(i) + "}");
    if (i == 50) request = message(R"({"id":50})", "nope");
    if (i == 60) request = message("hello");
    request.set_functioninvokeid("call-" + std::to_string(i));
    *batch.add_messages() = request;
    if (batch.messages_size() == batch_size || i + 1 == kMessages) {
      ASSERT_TRUE(stream->Write(batch));
      batch.Clear();
      batch_size = batch_size % 7 + 1;  // batches of 1 to 7 requests
    }
  }
  stream->WritesDone();
  std::vector<FunctionMessage> replies;
  FunctionMessages received;
  while (stream->Read(&received)) {
    EXPECT_GT(received.messages_size(), 0) << "no empty reply batch";
    for (const auto& reply : received.messages()) replies.push_back(reply);
  }
  ASSERT_EQ(replies.size(), static_cast<std::size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) {
    const FunctionMessage& reply = replies[static_cast<std::size_t>(i)];
    EXPECT_EQ(reply.functioninvokeid(), "call-" + std::to_string(i));
    if (i == 50) {
      EXPECT_EQ(reply.errorcode(), static_cast<std::uint32_t>(grpc::StatusCode::NOT_FOUND));
      EXPECT_EQ(reply.errormessage(),
                "function 'nope' not found (this runtime serves: sql-filter)");
    } else if (i == 60) {
      EXPECT_EQ(reply.errorcode(),
                static_cast<std::uint32_t>(grpc::StatusCode::INVALID_ARGUMENT));
    } else if (i < 10) {
      EXPECT_EQ(reply.errorcode(), 0u);
      EXPECT_EQ(reply.payload(), R"({"qos":1,"topic":"t","id":)" + std::to_string(i) + "}");
    } else {
      EXPECT_EQ(reply.errorcode(), 0u);
      EXPECT_EQ(reply.payload(), "") << "filtered out by the where clause";
    }
  }
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// Replies evaluated while a write is in flight go out together, but a batch stays far below
// gRPC's 4 MB message limit: 64 requests of 100 KB each come back in several batches.
TEST(FunctionSqlTest, CallStreamSplitsLargeReplies) {
  Runtime runtime(kWalkthrough);
  ASSERT_TRUE(runtime.ready()) << runtime.output();
  auto stub = runtime.stub();
  grpc::ClientContext context;
  auto stream = open_call_stream(*stub, context, 20s);
  constexpr int kMessages = 64;
  const std::string pad(100 * 1024, 'x');
  for (int i = 0; i < kMessages; ++i) {
    FunctionMessages batch;
    *batch.add_messages() = message(R"({"id":1,"pad":")" + pad + "\"}");
    ASSERT_TRUE(stream->Write(batch));
  }
  stream->WritesDone();
  int replies = 0;
  FunctionMessages received;
  while (stream->Read(&received)) {
    EXPECT_LE(received.ByteSizeLong(), 512u * 1024)
        << "a reply batch of " << received.messages_size();
    for (const auto& reply : received.messages()) {
      EXPECT_EQ(reply.errorcode(), 0u) << reply.errormessage();
      EXPECT_EQ(reply.payload().size(), pad.size() + 37);
      ++replies;
    }
  }
  EXPECT_EQ(replies, kMessages);
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST(FunctionSqlTest, MessageLengthLimit) {
  Runtime runtime(std::string(kWalkthrough) + R"(server:
  message:
    length:
      max: 1k
)");
  ASSERT_TRUE(runtime.ready()) << runtime.output();
  auto stub = runtime.stub();
  FunctionMessage reply;
  std::string small = R"({"id":1,"pad":")" + std::string(900, 'x') + "\"}";
  grpc::Status status = call(*stub, message(small), reply);
  ASSERT_TRUE(status.ok()) << status.error_message();

  std::string large = R"({"id":1,"pad":")" + std::string(2000, 'x') + "\"}";
  status = call(*stub, message(large), reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();

  // A reply above the limit is refused too: 700 bytes in, about 1.4 KiB out.
  Runtime doubling(R"(functions:
  - name: sql-filter
    handler: select pad as a, pad as b
server:
  message:
    length:
      max: 1k
)");
  ASSERT_TRUE(doubling.ready()) << doubling.output();
  status = call(*doubling.stub(), message(R"({"pad":")" + std::string(700, 'x') + "\"}"), reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
}

TEST(FunctionSqlTest, BadSqlExitsWithThePosition) {
  Runtime runtime(R"(functions:
  - name: good
    handler: select *
  - name: bad
    handler: select qos() as qos, * where
  - name: worse
    handler: select foo(1)
)");
  auto code = runtime.process().wait(10s);
  ASSERT_TRUE(code.has_value()) << runtime.output();
  EXPECT_EQ(*code, 1);
  std::string out = runtime.output();
  EXPECT_NE(out.find("functions[1].handler: sql: 1:29: expected an expression after 'where', "
                     "found the end of the query"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("functions[2].handler: sql: 1:8: unknown function 'foo'"), std::string::npos)
      << out;
}

TEST(FunctionSqlTest, InvalidConfigurationExits) {
  Runtime no_functions("server:\n  address: 127.0.0.1:1\n");
  auto code = no_functions.process().wait(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_NE(no_functions.output().find("functions: is required"), std::string::npos)
      << no_functions.output();

  Runtime duplicate(R"(functions:
  - {name: f, handler: select *}
  - {name: f, handler: select 1 as one}
)");
  code = duplicate.process().wait(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_NE(duplicate.output().find("functions[1].name: duplicate function name 'f'"),
            std::string::npos)
      << duplicate.output();
}

TEST(FunctionSqlTest, ConfiguredAddressWithoutEnvironment) {
  Runtime runtime(std::string(kWalkthrough) + "server:\n  address: tcp://127.0.0.1:{port}\n",
                  /*address_from_env=*/false);
  ASSERT_TRUE(runtime.ready()) << runtime.output();
  FunctionMessage reply;
  ASSERT_TRUE(call(*runtime.stub(), message(R"({"id":5})"), reply).ok());
  EXPECT_EQ(reply.payload(), R"({"qos":1,"topic":"t","id":5})");
}

TEST(FunctionSqlTest, MutualTls) {
  testing::TempDir pki_dir;
  auto pki = testing::make_test_pki(pki_dir.path());
  Runtime runtime(std::string(kWalkthrough) + "server:\n  ca: " + pki.ca.string() + "\n  key: " +
                  pki.server_key.string() + "\n  cert: " + pki.server_cert.string() + "\n");
  ASSERT_TRUE(runtime.ready()) << runtime.output();
  grpc::SslCredentialsOptions with_cert{testing::read_text(pki.ca),
                                        testing::read_text(pki.client_key),
                                        testing::read_text(pki.client_cert)};
  FunctionMessage reply;
  grpc::Status status =
      call(*runtime.stub(grpc::SslCredentials(with_cert)), message(R"({"id":1})"), reply);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << runtime.output();
  EXPECT_EQ(reply.payload(), R"({"qos":1,"topic":"t","id":1})");

  grpc::SslCredentialsOptions without_cert{testing::read_text(pki.ca), "", ""};
  status = call(*runtime.stub(grpc::SslCredentials(without_cert)), message(R"({"id":1})"), reply);
  EXPECT_FALSE(status.ok());
  status = call(*runtime.stub(), message(R"({"id":1})"), reply);
  EXPECT_FALSE(status.ok());
}

TEST(FunctionSqlTest, ConcurrentCallsAreNeverRejected) {
  Runtime runtime(std::string(kWalkthrough) + "server:\n  workers:\n    max: 2\n");
  ASSERT_TRUE(runtime.ready()) << runtime.output();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto stub = runtime.stub();
      for (int i = 0; i < 50; ++i) {
        FunctionMessage reply;
        int id = t * 100 + i;
        grpc::Status status = call(*stub, message(R"({"id":)" + std::to_string(id) + "}"), reply);
        if (!status.ok()) ADD_FAILURE() << status.error_code() << ": " << status.error_message();
        if (status.ok() &&
            reply.payload() ==
                (id < 10 ? R"({"qos":1,"topic":"t","id":)" + std::to_string(id) + "}" : "")) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(runtime.process().stop(SIGTERM), 0) << runtime.output();
}

}  // namespace
}  // namespace baetyl
