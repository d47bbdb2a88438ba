// proto/function.proto is the contract between the function manager (C++) and the Python and Node
// runtimes: a C++ client calls real Python and Node servers and checks every field comes back.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "baetyl/testing/ports.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"
#include "function.grpc.pb.h"

namespace baetyl {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kSourceDir = BAETYL_SOURCE_DIR;
const fs::path kBinaryDir = BAETYL_BINARY_DIR;
const std::string kInstallHint = "run scripts/install-deps.sh";

std::optional<fs::path> find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  std::istringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    fs::path candidate = fs::path(dir) / name;
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return std::nullopt;
}

// One echo server as a child process, listening on a free port.
class EchoServer {
 public:
  // Starts `argv` with "{port}" replaced by the port; on failure, error() says why.
  explicit EchoServer(std::vector<std::string> argv) : port_(testing::free_port()) {
    for (auto& arg : argv) {
      if (arg == "{port}") arg = std::to_string(port_);
    }
    testing::ProcessOptions options;
    options.output_file = (dir_.path() / "server.log").string();
    process_ = std::make_unique<testing::Process>(argv, options);
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!process_->running()) {
        error_ = "the server exited before listening; its output:\n" + process_->output();
        return;
      }
      if (testing::wait_for_port(port_, 200ms)) return;
    }
    error_ = "the server did not listen on port " + std::to_string(port_) +
             " within 30 s; its output:\n" + process_->output();
  }

  const std::string& error() const { return error_; }
  std::string output() const { return process_->output(); }

  std::unique_ptr<Function::Stub> stub() const {
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                       grpc::InsecureChannelCredentials());
    return Function::NewStub(channel);
  }

 private:
  testing::TempDir dir_;
  std::uint16_t port_;
  std::unique_ptr<testing::Process> process_;
  std::string error_;
};

grpc::Status call(Function::Stub& stub, const FunctionMessage& request, FunctionMessage& reply) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 20s);
  return stub.Call(&context, request, &reply);
}

std::string reversed(std::string s) { return {s.rbegin(), s.rend()}; }

FunctionMessage full_message() {
  FunctionMessage message;
  message.set_id(18446744073709551557ull);  // largest 64-bit prime: beyond int64 and double
  message.set_qos(1);
  message.set_topic("sensors/temperature/ü");
  static constexpr char kPayload[] = "\x00\x01{\"t\":21.5}\x00\xff\x80 end";
  message.set_payload(std::string(kPayload, sizeof kPayload - 1));
  message.set_timestamp(-1234567890123);  // sint64: zigzag encoded
  message.set_functionname("sayhi");
  message.set_functioninvokeid("6f1c3a52-95e9-4e32-9b2c-0d7a1c0e4b77");
  return message;
}

// Calls the server three times: every field set, every field at its default, a 1 MiB payload.
void check_echo(const EchoServer& server, const std::string& prefix) {
  auto stub = server.stub();

  FunctionMessage request = full_message();
  FunctionMessage reply;
  grpc::Status status = call(*stub, request, reply);
  ASSERT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message()
                           << "\nserver output:\n" << server.output();
  EXPECT_EQ(reply.id(), 18446744073709551557ull);
  EXPECT_EQ(reply.qos(), 1u);
  EXPECT_EQ(reply.topic(), request.topic());
  EXPECT_EQ(reply.payload(), reversed(request.payload()));
  EXPECT_EQ(reply.payload().size(), request.payload().size());
  EXPECT_EQ(reply.timestamp(), -1234567890123);
  EXPECT_EQ(reply.functionname(), prefix + "sayhi");
  EXPECT_EQ(reply.functioninvokeid(), request.functioninvokeid());

  FunctionMessage empty_reply;
  status = call(*stub, FunctionMessage(), empty_reply);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\nserver output:\n" << server.output();
  EXPECT_EQ(empty_reply.id(), 0u);
  EXPECT_EQ(empty_reply.qos(), 0u);
  EXPECT_EQ(empty_reply.topic(), "");
  EXPECT_EQ(empty_reply.payload(), "");
  EXPECT_EQ(empty_reply.timestamp(), 0);
  EXPECT_EQ(empty_reply.functionname(), prefix);
  EXPECT_EQ(empty_reply.functioninvokeid(), "");

  FunctionMessage large;
  std::string payload(1 << 20, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7 % 251);
  large.set_payload(payload);
  large.set_timestamp(1795635033);
  FunctionMessage large_reply;
  status = call(*stub, large, large_reply);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\nserver output:\n" << server.output();
  EXPECT_TRUE(large_reply.payload() == reversed(payload)) << "1 MiB payload not reversed";
  EXPECT_EQ(large_reply.timestamp(), 1795635033);
}

TEST(ProtoInteropTest, CppMessageRoundTrip) {
  FunctionMessage request = full_message();
  std::string wire;
  ASSERT_TRUE(request.SerializeToString(&wire));
  FunctionMessage parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  EXPECT_EQ(parsed.SerializeAsString(), wire);
  EXPECT_EQ(parsed.timestamp(), -1234567890123);
  // Timestamp is field 10, sint64 (varint, zigzag): tag byte (10 << 3) | 0 = 0x50.
  FunctionMessage only_timestamp;
  only_timestamp.set_timestamp(-1);
  EXPECT_EQ(only_timestamp.SerializeAsString(), std::string("\x50\x01", 2));
}

TEST(ProtoInteropTest, PythonServer) {
  const fs::path python = "/usr/bin/python3";  // Debian's grpcio lives only under this one
  const fs::path stubs = kBinaryDir / "python";
  ASSERT_TRUE(fs::exists(python)) << "/usr/bin/python3 is missing: " << kInstallHint;
  ASSERT_TRUE(fs::exists(stubs / "function_pb2.py") && fs::exists(stubs / "function_pb2_grpc.py"))
      << "Python stubs missing in " << stubs << ": build target baetyl_function_proto_python";
  EchoServer server({python.string(), (kSourceDir / "test/proto/echo_server.py").string(),
                     stubs.string(), "{port}"});
  ASSERT_EQ(server.error(), "") << "(is python3-grpcio installed? " << kInstallHint << ")";
  check_echo(server, "py:");
}

TEST(ProtoInteropTest, NodeServer) {
  auto node = find_in_path("node");
  ASSERT_TRUE(node) << "node is not on PATH: install Node.js, then " << kInstallHint;
  const fs::path modules = kSourceDir / "modules/function-node/node_modules";
  for (const char* package : {"@grpc/grpc-js", "@grpc/proto-loader"}) {
    ASSERT_TRUE(fs::exists(modules / package / "package.json"))
        << "npm package " << package << " is missing from " << modules << ": " << kInstallHint;
  }
  EchoServer server({node->string(), (kSourceDir / "test/proto/echo_server.js").string(),
                     "{port}"});
  ASSERT_EQ(server.error(), "");
  check_echo(server, "node:");
}

}  // namespace
}  // namespace baetyl
