// End to end: the real baetyl-function-python on a free port, in a temporary work directory
// holding service.yml and the functions, called by a C++ gRPC client.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baetyl/testing/tls.h"
#include "runtime_harness.h"

namespace baetyl::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

const fs::path kBinaryDir = BAETYL_BINARY_DIR;

// The module description's sayhi.py, as in the docs.
constexpr char kSayhiPy[] = R"(#!/usr/bin/env python3
#-*- coding:utf-8 -*-
"""
module to say hi
"""

def handler(event, context):
    """
    function handler
    """
    event['functionName'] = context['functionName']
    event['functionInvokeID'] = context['functionInvokeID']
    event['messageQOS'] = context['messageQOS']
    event['messageTopic'] = context['messageTopic']
    event['sayhi'] = 'hello, world'
    return event
)";

// The walkthrough's index.py ("Message handling with Local Function Service"), as in the docs:
// the copy in example/native, so the example and the tests cannot drift apart.
std::string example_code(const char* file) {
  std::ifstream in(std::string(BAETYL_SOURCE_DIR) + "/example/native/var/db/baetyl/" + file);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Handlers probing the rest of the contract.
constexpr char kProbePy[] = R"(import os
import time


def context(event, context):
    return context


def environ(event, context):
    return {'value': os.environ.get('BAETYL_TEST_VALUE'), 'path': os.environ['PATH']}


def echo(event, context):
    return event


def none(event, context):
    return None


def text(event, context):
    return 'plain text, not JSON'


def listing(event, context):
    return [1, 'two', {'three': 3}]


def slow(event, context):
    time.sleep(event['seconds'])
    return {'slept': event['seconds']}
)";

// A "third-party library" unpacked into the codedir, as the docs' guide lays out requests.
constexpr char kTinylibInit[] = R"(from .words import shout

__version__ = '0.1'
)";
constexpr char kTinylibWords[] = R"(def shout(text):
    return text.upper() + '!'
)";
constexpr char kUsesLibPy[] = R"(#!/usr/bin/env python3
import tinylib


def handler(event, context):
    event['shouted'] = tinylib.shout(event['text'])
    event['version'] = tinylib.__version__
    return event
)";

constexpr char kServiceYml[] = R"(functions:
  - name: 'sayhi'
    handler: 'sayhi.handler'
    codedir: 'var/db/baetyl/function-sayhi'
  - name: 'python36-sayhi'
    handler: 'index.handler'
    codedir: 'var/db/baetyl/function-sayhi'
  - name: 'context'
    handler: 'probe.context'
    codedir: 'var/db/baetyl/function-sayhi'
  - name: 'environ'
    handler: 'probe.environ'
    codedir: 'var/db/baetyl/function-sayhi'
  - name: 'echo'
    handler: 'probe.echo'
    codedir: 'var/db/baetyl/function-sayhi'
  - name: 'none'
    handler: 'probe.none'
    codedir: 'var/db/baetyl/function-sayhi'
  - name: 'text'
    handler: 'probe.text'
    codedir: 'var/db/baetyl/function-sayhi'
  - name: 'listing'
    handler: 'probe.listing'
    codedir: 'var/db/baetyl/function-sayhi'
  - name: 'slow'
    handler: 'probe.slow'
    codedir: 'var/db/baetyl/function-sayhi'
  - name: 'uses-lib'
    handler: 'get.handler'
    codedir: 'var/db/baetyl/function-lib'
)";

std::vector<std::string> runtime_argv() {
  return {(kBinaryDir / "bin" / "baetyl-function-python").string()};
}

void write_code(const TempDir& dir) {
  dir.write("var/db/baetyl/function-sayhi/__init__.py", "");
  dir.write("var/db/baetyl/function-sayhi/sayhi.py", kSayhiPy);
  const std::string code = example_code("function-sayhi-code/index.py");
  ASSERT_FALSE(code.empty());
  dir.write("var/db/baetyl/function-sayhi/index.py", code);
  dir.write("var/db/baetyl/function-sayhi/probe.py", kProbePy);
  dir.write("var/db/baetyl/function-lib/__init__.py", "");
  dir.write("var/db/baetyl/function-lib/get.py", kUsesLibPy);
  dir.write("var/db/baetyl/function-lib/tinylib/__init__.py", kTinylibInit);
  dir.write("var/db/baetyl/function-lib/tinylib/words.py", kTinylibWords);
}

// One runtime serving every function of kServiceYml, shared by the tests of the fixture.
class FunctionPythonTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_code(*dir_);
    dir_->write("etc/baetyl/service.yml", kServiceYml);
    runtime_ = new Runtime(runtime_argv(), dir_->path(), {{"BAETYL_TEST_VALUE", "from the test"}});
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

  json call_json(const std::string& function, const std::string& payload) {
    FunctionMessage reply;
    grpc::Status status = call(*stub_, make_message(function, payload), reply);
    EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
    return json::parse(reply.payload(), nullptr, false);
  }

  static TempDir* dir_;
  static Runtime* runtime_;
  static std::optional<std::chrono::milliseconds> ready_;
  std::unique_ptr<Function::Stub> stub_;
};

TempDir* FunctionPythonTest::dir_ = nullptr;
Runtime* FunctionPythonTest::runtime_ = nullptr;
std::optional<std::chrono::milliseconds> FunctionPythonTest::ready_;

TEST_F(FunctionPythonTest, DocsSayhiWithDictEvent) {
  FunctionMessage request = make_message("sayhi", R"({"id":1,"device":"111"})", "t", 1);
  FunctionMessage reply;
  grpc::Status status = call(*stub_, request, reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // Every field but the payload comes back as sent.
  EXPECT_EQ(reply.id(), request.id());
  EXPECT_EQ(reply.qos(), request.qos());
  EXPECT_EQ(reply.topic(), request.topic());
  EXPECT_EQ(reply.timestamp(), request.timestamp());
  EXPECT_EQ(reply.functionname(), "sayhi");
  EXPECT_EQ(reply.functioninvokeid(), request.functioninvokeid());
  json result = json::parse(reply.payload());
  EXPECT_EQ(result, json({{"id", 1},
                          {"device", "111"},
                          {"functionName", "sayhi"},
                          {"functionInvokeID", request.functioninvokeid()},
                          {"messageQOS", 1},
                          {"messageTopic", "t"},
                          {"sayhi", "hello, world"}}));
}

TEST_F(FunctionPythonTest, WalkthroughIndexWithDictEvent) {
  json result = call_json("python36-sayhi", R"({"id":1})");
  EXPECT_EQ(result, json({{"id", 1},
                          {"messageQOS", 1},
                          {"messageTopic", "t"},
                          {"messageTimestamp", 1795635033},
                          {"functionName", "python36-sayhi"},
                          {"functionInvokeID", "50f8f102-2b8c-4904-86df-0728811a5a4b"},
                          {"Say", "Hello Baetyl"}}));
}

TEST_F(FunctionPythonTest, WalkthroughIndexWithBytesEvent) {
  json result = call_json("python36-sayhi", "hello, not JSON");
  EXPECT_EQ(result["bytes"], "hello, not JSON");
  EXPECT_EQ(result["Say"], "Hello Baetyl");
  EXPECT_EQ(result["functionName"], "python36-sayhi");
}

TEST_F(FunctionPythonTest, HandlerExceptionIsAGrpcErrorWithItsMessage) {
  FunctionMessage reply;
  grpc::Status status = call(*stub_, make_message("python36-sayhi", R"({"err":"bad id"})"), reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_NE(status.error_message().find("TypeError: bad id"), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("index.py"), std::string::npos) << status.error_message();
  // The runtime keeps serving.
  EXPECT_EQ(call_json("python36-sayhi", R"({"id":2})")["id"], 2);
}

TEST_F(FunctionPythonTest, ContextHasTheDocumentedKeys) {
  FunctionMessage request = make_message("context", "{}", "a/b", 0);
  request.set_functioninvokeid("invoke-7");
  request.set_timestamp(-5);
  FunctionMessage reply;
  ASSERT_TRUE(call(*stub_, request, reply).ok());
  EXPECT_EQ(json::parse(reply.payload()), json({{"messageQOS", 0},
                                                {"messageTopic", "a/b"},
                                                {"messageTimestamp", -5},
                                                {"functionName", "context"},
                                                {"functionInvokeID", "invoke-7"},
                                                {"invokeid", "invoke-7"}}));
}

TEST_F(FunctionPythonTest, EnvironmentIsAvailable) {
  json result = call_json("environ", "{}");
  EXPECT_EQ(result["value"], "from the test");
  EXPECT_FALSE(result["path"].get<std::string>().empty());
}

TEST_F(FunctionPythonTest, ThirdPartyPackageInCodedir) {
  json result = call_json("uses-lib", R"({"text":"hi"})");
  EXPECT_EQ(result, json({{"text", "hi"}, {"shouted", "HI!"}, {"version", "0.1"}}));
}

TEST_F(FunctionPythonTest, EventIsJsonWhenValidElseBytes) {
  EXPECT_EQ(call_json("echo", "[1,2]"), json({1, 2}));
  EXPECT_EQ(call_json("echo", "3.5"), json(3.5));
  // Bytes (not JSON, not even UTF-8) come back unchanged.
  const std::string binary("\x00\xff\x80{", 4);
  FunctionMessage reply;
  ASSERT_TRUE(call(*stub_, make_message("echo", binary), reply).ok());
  EXPECT_EQ(reply.payload(), binary);
  ASSERT_TRUE(call(*stub_, make_message("echo", ""), reply).ok());
  EXPECT_EQ(reply.payload(), "");
}

TEST_F(FunctionPythonTest, ResultEncoding) {
  FunctionMessage reply;
  ASSERT_TRUE(call(*stub_, make_message("none", "{}"), reply).ok());
  EXPECT_EQ(reply.payload(), "");
  ASSERT_TRUE(call(*stub_, make_message("text", "{}"), reply).ok());
  EXPECT_EQ(reply.payload(), "plain text, not JSON");
  EXPECT_EQ(call_json("listing", "{}"), json::parse(R"([1,"two",{"three":3}])"));
}

TEST_F(FunctionPythonTest, UnknownFunctionIsAnError) {
  FunctionMessage reply;
  grpc::Status status = call(*stub_, make_message("nobody", "{}"), reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("'nobody' not found"), std::string::npos)
      << status.error_message();
}

TEST_F(FunctionPythonTest, CallsRunConcurrently) {
  auto start = std::chrono::steady_clock::now();
  std::vector<std::future<bool>> calls;
  for (int i = 0; i < 4; ++i) {
    calls.push_back(std::async(std::launch::async, [] {
      auto stub = runtime_->stub();
      FunctionMessage reply;
      return call(*stub, make_message("slow", R"({"seconds":0.5})"), reply).ok();
    }));
  }
  for (auto& c : calls) EXPECT_TRUE(c.get());
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, 1500ms) << "four 0.5 s calls did not overlap";
}

TEST_F(FunctionPythonTest, LogsInTheFormatOfTheCppModules) {
  // 2026-11-25 19:30:33.123 [info] message
  std::string output = runtime_->output();
  auto line_start = output.find("[info] listening on 127.0.0.1:");
  ASSERT_NE(line_start, std::string::npos) << output;
  ASSERT_GE(line_start, 24u);
  std::string stamp = output.substr(line_start - 24, 24);
  EXPECT_EQ(stamp[4], '-');
  EXPECT_EQ(stamp[10], ' ');
  EXPECT_EQ(stamp[19], '.');
  EXPECT_EQ(stamp[23], ' ');
}

// ---- Each test below starts its own runtime ----

struct StartedRuntime {
  TempDir dir;
  std::unique_ptr<Runtime> runtime;
};

std::unique_ptr<StartedRuntime> start(const std::string& service_yml,
                                      std::map<std::string, std::string> env = {}) {
  auto started = std::make_unique<StartedRuntime>();
  write_code(started->dir);
  started->dir.write("etc/baetyl/service.yml", service_yml);
  started->runtime = std::make_unique<Runtime>(runtime_argv(), started->dir.path(), env);
  return started;
}

// Starts a runtime that must fail at start; returns its output after checking exit code 1.
std::string start_failure(const std::string& service_yml) {
  auto started = start(service_yml);
  auto code = started->runtime->process().wait(10s);
  EXPECT_EQ(code, std::optional<int>(1)) << started->runtime->output();
  return started->runtime->output();
}

TEST(FunctionPythonStartTest, BadHandlersAreReportedAtStart) {
  const std::string head = "functions:\n  - name: f\n    codedir: var/db/baetyl/function-sayhi\n";
  std::string output = start_failure(head + "    handler: nodot\n");
  EXPECT_NE(output.find("etc/baetyl/service.yml: functions[0].handler: 'nodot' is not of the form "
                        "module.function"),
            std::string::npos)
      << output;
  output = start_failure(head + "    handler: missing.handler\n");
  EXPECT_NE(output.find("functions[0].handler: cannot import module 'missing'"), std::string::npos)
      << output;
  output = start_failure(head + "    handler: sayhi.nope\n");
  EXPECT_NE(output.find("functions[0].handler: module 'sayhi'"), std::string::npos) << output;
  EXPECT_NE(output.find("has no function 'nope'"), std::string::npos) << output;
}

TEST(FunctionPythonStartTest, BadConfigurationIsReportedAtStart) {
  std::string output = start_failure("functions:\n  - name: f\n    handler: sayhi.handler\n");
  EXPECT_NE(output.find("functions[0].codedir: is required"), std::string::npos) << output;
  output = start_failure(
      "server:\n  workers:\n    max: many\nfunctions:\n  - name: f\n    handler: sayhi.handler\n"
      "    codedir: nowhere\n");
  EXPECT_NE(output.find("server.workers.max: expected an integer"), std::string::npos) << output;
  output =
      start_failure("functions:\n  - name: f\n    handler: sayhi.handler\n    codedir: nowhere\n");
  EXPECT_NE(output.find("functions[0].codedir:"), std::string::npos) << output;
  EXPECT_NE(output.find("is not a directory"), std::string::npos) << output;
  output = start_failure("server: {address: 1}\n");
  EXPECT_NE(output.find("functions: is required"), std::string::npos) << output;
}

TEST(FunctionPythonStartTest, MissingConfigFileIsReported) {
  TempDir dir;
  Runtime runtime(runtime_argv(), dir.path());
  EXPECT_EQ(runtime.process().wait(10s), std::optional<int>(1));
  EXPECT_NE(runtime.output().find("etc/baetyl/service.yml: no such file"), std::string::npos)
      << runtime.output();
}

TEST(FunctionPythonStartTest, MessagesAboveTheLengthLimitAreRejected) {
  auto started = start(
      "server:\n  message:\n    length:\n      max: 1k\nfunctions:\n  - name: echo\n"
      "    handler: probe.echo\n    codedir: var/db/baetyl/function-sayhi\n");
  ASSERT_TRUE(started->runtime->wait_ready()) << started->runtime->output();
  auto stub = started->runtime->stub();
  FunctionMessage reply;
  ASSERT_TRUE(call(*stub, make_message("echo", std::string(900, 'a')), reply).ok());
  EXPECT_EQ(reply.payload().size(), 900u);
  grpc::Status status = call(*stub, make_message("echo", std::string(2048, 'a')), reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
}

TEST(FunctionPythonStartTest, SigtermFinishesTheCallInFlightAndExitsZero) {
  auto started = start(kServiceYml);
  ASSERT_TRUE(started->runtime->wait_ready()) << started->runtime->output();
  auto in_flight = std::async(std::launch::async, [&] {
    auto stub = started->runtime->stub();
    FunctionMessage reply;
    grpc::Status status = call(*stub, make_message("slow", R"({"seconds":0.8})"), reply);
    return status.ok() ? reply.payload() : "error: " + status.error_message();
  });
  std::this_thread::sleep_for(300ms);
  auto signalled = std::chrono::steady_clock::now();
  int code = started->runtime->process().stop(SIGTERM, 10s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - signalled);
  EXPECT_EQ(code, 0) << started->runtime->output();
  EXPECT_EQ(json::parse(in_flight.get(), nullptr, false), json({{"slept", 0.8}}));
  EXPECT_LT(took, 3s);
  EXPECT_NE(started->runtime->output().find("baetyl-function-python stopped"), std::string::npos);
}

TEST(FunctionPythonStartTest, SigtermWhenIdleExitsPromptly) {
  auto started = start(kServiceYml);
  ASSERT_TRUE(started->runtime->wait_ready()) << started->runtime->output();
  auto signalled = std::chrono::steady_clock::now();
  EXPECT_EQ(started->runtime->process().stop(SIGTERM, 10s), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, 1s);
}

TEST(FunctionPythonStartTest, ColdStartUntilTheFirstCall) {
  std::vector<long> samples;
  for (int i = 0; i < 5; ++i) {
    auto started = start(kServiceYml);
    auto ready = started->runtime->wait_ready();
    ASSERT_TRUE(ready) << started->runtime->output();
    samples.push_back(ready->count());
  }
  std::sort(samples.begin(), samples.end());
  std::printf(
      "baetyl-function-python cold start (spawn to first answered call), 5 runs: "
      "min %ld ms, median %ld ms, max %ld ms (target 300 ms)\n",
      samples.front(), samples[2], samples.back());
  RecordProperty("cold_start_median_ms", static_cast<int>(samples[2]));
  // Generous bound for a loaded CI machine; the figure above is what matters.
  EXPECT_LT(samples[2], 3000);
}

TEST(FunctionPythonStartTest, Python27ImageNameWarns) {
  auto started = start(kServiceYml, {{"BAETYL_SERVICE_NAME", "function-python27-sayhi"}});
  ASSERT_TRUE(started->runtime->wait_ready()) << started->runtime->output();
  EXPECT_NE(started->runtime->output().find("[warn] Python 2.7 is not available"),
            std::string::npos)
      << started->runtime->output();
  EXPECT_NE(started->runtime->output().find("service=function-python27-sayhi"), std::string::npos);
}

TEST(FunctionPythonStartTest, TlsWithClientCertificates) {
  TempDir pki_dir;
  TestPki pki = make_test_pki(pki_dir.path());
  auto started = start("server:\n  ca: " + pki.ca.string() + "\n  key: " + pki.server_key.string() +
                       "\n  cert: " + pki.server_cert.string() +
                       "\nfunctions:\n  - name: sayhi\n    handler: sayhi.handler\n"
                       "    codedir: var/db/baetyl/function-sayhi\n");
  auto read = [](const fs::path& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = read(pki.ca);
  options.pem_cert_chain = read(pki.client_cert);
  options.pem_private_key = read(pki.client_key);
  auto stub = Function::NewStub(started->runtime->channel(grpc::SslCredentials(options)));
  ASSERT_TRUE(wait_for_port(started->runtime->port())) << started->runtime->output();
  FunctionMessage reply;
  grpc::Status status = call(*stub, make_message("sayhi", R"({"id":1})"), reply);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << started->runtime->output();
  EXPECT_EQ(json::parse(reply.payload())["sayhi"], "hello, world");

  // Without a client certificate the handshake fails.
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = read(pki.ca);
  auto anonymous = Function::NewStub(started->runtime->channel(grpc::SslCredentials(no_cert)));
  EXPECT_FALSE(call(*anonymous, make_message("sayhi", R"({"id":1})"), reply, 2s).ok());
}

}  // namespace
}  // namespace baetyl::testing
