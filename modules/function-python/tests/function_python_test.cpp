// End to end: the real baetyl-function-python on a free port, in a temporary work directory
// holding service.yml and the functions, called by a C++ gRPC client.
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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
    open('slow.started', 'w').close()  # the call is in the handler: see the harness
    time.sleep(event['seconds'])
    return {'slept': event['seconds']}


def pace(event, context):
    time.sleep(event.get('seconds', 0))
    return event
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
  - name: 'pace'
    handler: 'probe.pace'
    codedir: 'var/db/baetyl/function-sayhi'
  - name: 'uses-lib'
    handler: 'get.handler'
    codedir: 'var/db/baetyl/function-lib'
)";

void write_code(const TempDir& dir) {
  dir.write("var/db/baetyl/function-sayhi/__init__.py", "");
  dir.write("var/db/baetyl/function-sayhi/sayhi.py", kSayhiPy);
  // The walkthrough's index.py ("Message handling with Local Function Service"), as in the docs.
  const std::string code = example_code("function-sayhi-code/index.py");
  ASSERT_FALSE(code.empty());
  dir.write("var/db/baetyl/function-sayhi/index.py", code);
  dir.write("var/db/baetyl/function-sayhi/probe.py", kProbePy);
  dir.write("var/db/baetyl/function-lib/__init__.py", "");
  dir.write("var/db/baetyl/function-lib/get.py", kUsesLibPy);
  dir.write("var/db/baetyl/function-lib/tinylib/__init__.py", kTinylibInit);
  dir.write("var/db/baetyl/function-lib/tinylib/words.py", kTinylibWords);
}

const RuntimeDescription kPython = {
    .binary = kBinaryDir / "bin" / "baetyl-function-python",
    .write_code = write_code,
    .service_yml = kServiceYml,
    .missing_module_error = "functions[0].handler: cannot import module 'missing'",
    .missing_function_error = "has no function 'nope'",
    .slow_event = R"({"seconds":0.8})",
    .slow_reply = json({{"slept", 0.8}}),
    .sayhi_reply_key = "sayhi",
    .sayhi_reply_value = "hello, world",
};

// One runtime serving every function of kServiceYml, shared by the tests of the fixture.
class FunctionPythonTest : public SharedRuntimeTest<FunctionPythonTest> {
 protected:
  static void SetUpTestSuite() { start_shared_runtime(kPython, kServiceYml); }
};

TEST_F(FunctionPythonTest, DocsSayhiWithDictEvent) {
  FunctionMessage request = make_message("sayhi", R"({"id":1,"device":"111"})", "t", 1);
  FunctionMessage reply;
  grpc::Status status = call(*stub_, request, reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  expect_fields_but_the_payload_as_sent(request, reply);
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
  expect_walkthrough_index_with_dict_event("python36-sayhi");
}

TEST_F(FunctionPythonTest, WalkthroughIndexWithBytesEvent) {
  json result = expect_walkthrough_index_with_bytes_event("python36-sayhi");
  EXPECT_EQ(result["functionName"], "python36-sayhi");
}

TEST_F(FunctionPythonTest, HandlerExceptionIsAGrpcErrorWithItsMessage) {
  std::string error = expect_walkthrough_error_is_a_grpc_error("python36-sayhi");
  EXPECT_NE(error.find("index.py"), std::string::npos) << error;
}

TEST_F(FunctionPythonTest, ContextHasTheDocumentedKeys) {
  expect_context_has_the_documented_keys();
}

TEST_F(FunctionPythonTest, EnvironmentIsAvailable) { expect_environment_is_available(); }

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

TEST_F(FunctionPythonTest, ResultEncoding) { expect_result_encoding(); }

TEST_F(FunctionPythonTest, UnknownFunctionIsAnError) { expect_unknown_function_is_an_error(); }

TEST_F(FunctionPythonTest, CallsRunConcurrently) {
  expect_four_slow_calls_overlap(R"({"seconds":0.5})");
}

TEST_F(FunctionPythonTest, CallStreamAnswersBatchesInOrderWithErrorsInline) {
  expect_call_stream_answers_batches_in_order_with_errors_inline("python36-sayhi");
}

TEST_F(FunctionPythonTest, CallStreamRunsTheCallsOfABatchConcurrently) {
  expect_call_stream_runs_a_batch_concurrently(R"({"seconds":0.5})", json({{"slept", 0.5}}));
}

TEST_F(FunctionPythonTest, CallStreamKeepsRepliesWithinTheClientsBound) {
  expect_call_stream_keeps_replies_within_the_clients_bound();
}

TEST_F(FunctionPythonTest, LogsInTheFormatOfTheCppModules) {
  expect_logs_in_the_format_of_the_cpp_modules(runtime_->output());
}

// ---- Each test below starts its own runtime ----

TEST(FunctionPythonStartTest, BadHandlersAreReportedAtStart) {
  expect_bad_handlers_are_reported_at_start(kPython);
}

TEST(FunctionPythonStartTest, BadConfigurationIsReportedAtStart) {
  expect_bad_codedir_is_reported_at_start(kPython);
  std::string output = start_failure(
      kPython,
      "server:\n  workers:\n    max: many\nfunctions:\n  - name: f\n    handler: sayhi.handler\n"
      "    codedir: nowhere\n");
  EXPECT_NE(output.find("server.workers.max: expected an integer"), std::string::npos) << output;
  output = start_failure(kPython, "server: {address: 1}\n");
  EXPECT_NE(output.find("functions: is required"), std::string::npos) << output;
}

TEST(FunctionPythonStartTest, MissingConfigFileIsReported) {
  expect_missing_config_file_is_reported(kPython);
}

TEST(FunctionPythonStartTest, MessagesAboveTheLengthLimitAreRejected) {
  expect_messages_above_the_length_limit_are_rejected(kPython);
}

TEST(FunctionPythonStartTest, SigtermFinishesTheCallInFlightAndExitsZero) {
  expect_sigterm_finishes_the_call_in_flight_and_exits_zero(kPython);
}

TEST(FunctionPythonStartTest, SigtermWhenIdleExitsPromptly) {
  expect_sigterm_when_idle_exits_promptly(kPython);
}

// The manager opens a stream after an instance's first call: once every function called has
// ended fast, the runtime says it answers calls as it reads them (the manager then fills this
// instance before it uses another); after a call that takes time, it does not.
TEST(FunctionPythonStartTest, CallStreamSaysItAnswersInlineOnlyWhileCallsEndFast) {
  auto started = start(kPython, kPython.service_yml);
  ASSERT_TRUE(started->runtime->wait_ready()) << started->runtime->output();
  auto stub = started->runtime->stub();
  EXPECT_FALSE(call_stream(*stub, {}, 1).answers_inline) << "nothing called yet";
  FunctionMessage reply;
  ASSERT_TRUE(call(*stub, make_message("sayhi", R"({"id":1})"), reply).ok());
  EXPECT_TRUE(call_stream(*stub, {make_message("sayhi", R"({"id":2})")}, 1).answers_inline);
  ASSERT_TRUE(call(*stub, make_message("slow", R"({"seconds":0.1})"), reply).ok());
  EXPECT_FALSE(call_stream(*stub, {make_message("sayhi", R"({"id":3})")}, 1).answers_inline);
}

// A CallStream kept open across batches: each batch is written and its replies read before the
// next one, with the AnswersInline the runtime set on them.
class OpenCallStream {
 public:
  explicit OpenCallStream(Function::Stub& stub) {
    context_.set_deadline(std::chrono::system_clock::now() + 120s);
    stream_ = stub.CallStream(&context_);
    stream_->WaitForInitialMetadata();
    inline_at_start_ = context_.GetServerInitialMetadata().count("baetyl-call-stream-inline") > 0;
  }
  ~OpenCallStream() {
    stream_->WritesDone();
    FunctionMessages rest;
    while (stream_->Read(&rest)) {
    }
    EXPECT_TRUE(stream_->Finish().ok());
  }
  bool inline_at_start() const { return inline_at_start_; }

  // `n` calls of `function` with `payload` as one batch; the last AnswersInline set on the
  // batches of their replies, if any.
  std::optional<bool> batch(const std::string& function, const std::string& payload, int n) {
    FunctionMessages requests;
    for (int i = 0; i < n; ++i) *requests.add_messages() = make_message(function, payload);
    EXPECT_TRUE(stream_->Write(requests));
    std::optional<bool> told;
    int answered = 0;
    FunctionMessages replies;
    while (answered < n && stream_->Read(&replies)) {
      answered += replies.messages_size();
      for (const auto& reply : replies.messages()) {
        EXPECT_EQ(reply.errorcode(), 0u) << reply.errormessage();
      }
      if (replies.has_answersinline()) told = replies.answersinline();
    }
    EXPECT_EQ(answered, n);
    return told;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<FunctionMessages, FunctionMessages>> stream_;
  bool inline_at_start_ = false;
};

// An open stream tells when the function's calls turn slow and when they end fast again, once
// the change has held (4 batches in a row, 0.2 s at least); one slow call among fast ones
// changes nothing.
TEST(FunctionPythonStartTest, CallStreamTellsWhenItsCallsTurnSlowAndWhenTheyEndFastAgain) {
  using Clock = std::chrono::steady_clock;
  auto started = start(kPython, kPython.service_yml);
  ASSERT_TRUE(started->runtime->wait_ready()) << started->runtime->output();
  auto stub = started->runtime->stub();
  FunctionMessage reply;
  ASSERT_TRUE(call(*stub, make_message("pace", "{}"), reply).ok());
  OpenCallStream stream(*stub);
  EXPECT_TRUE(stream.inline_at_start());
  const std::string fast = "{}";
  const std::string slow = R"({"seconds":0.005})";

  EXPECT_EQ(stream.batch("pace", slow, 1), std::nullopt);
  for (auto until = Clock::now() + 500ms; Clock::now() < until;) {
    EXPECT_EQ(stream.batch("pace", fast, 4), std::nullopt) << "one slow call changed the answer";
  }

  auto turned = Clock::now();
  std::optional<bool> told;
  while (!told && Clock::now() < turned + 10s) told = stream.batch("pace", slow, 4);
  ASSERT_EQ(told, std::optional<bool>(false)) << started->runtime->output();
  EXPECT_GE(Clock::now() - turned, 200ms);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(stream.batch("pace", slow, 4), std::nullopt);

  turned = Clock::now();
  told.reset();
  while (!told && Clock::now() < turned + 10s) told = stream.batch("pace", fast, 4);
  ASSERT_EQ(told, std::optional<bool>(true)) << started->runtime->output();
  EXPECT_GE(Clock::now() - turned, 200ms);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(stream.batch("pace", fast, 4), std::nullopt);
}

TEST(FunctionPythonStartTest, SigtermWithAnOpenCallStreamExitsPromptly) {
  expect_sigterm_with_an_open_call_stream_exits_promptly(kPython);
}

TEST(FunctionPythonStartTest, ColdStartUntilTheFirstCall) {
  expect_cold_start_until_the_first_call(kPython);
}

TEST(FunctionPythonStartTest, Python27ImageNameWarns) {
  auto started = start(kPython, kServiceYml, {{"BAETYL_SERVICE_NAME", "function-python27-sayhi"}});
  ASSERT_TRUE(started->runtime->wait_ready()) << started->runtime->output();
  EXPECT_NE(started->runtime->output().find("[warn] Python 2.7 is not available"),
            std::string::npos)
      << started->runtime->output();
  EXPECT_NE(started->runtime->output().find("service=function-python27-sayhi"), std::string::npos);
}

TEST(FunctionPythonStartTest, TlsWithClientCertificates) {
  expect_tls_with_client_certificates(kPython);
}

}  // namespace
}  // namespace baetyl::testing
