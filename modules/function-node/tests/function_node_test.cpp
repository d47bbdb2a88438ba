// End to end: the real baetyl-function-node on a free port, in a temporary work directory holding
// service.yml and the functions, called by a C++ gRPC client.
#include <chrono>
#include <filesystem>
#include <future>
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

// The module description's index.js, as in the docs.
constexpr char kSayhiJs[] = R"(#!/usr/bin/env node

exports.handler = (event, context, callback) => {
  result = {};

  if (Buffer.isBuffer(event)) {
    const message = event.toString();
    result["msg"] = message;
    result["type"] = 'non-dict';
  }else {
    result["msg"] = event;
    result["type"] = 'dict';
  }

  result["say"] = 'hello world';
  callback(null, result);
};
)";

// The lodash guide's index.js, as in the docs.
constexpr char kLodashJs[] = R"(#!/usr/bin/env node

const _ = require('lodash');

exports.handler = (event, context, callback) => {
  result = {}

  //remove repeating elements in array
  result["unique_array"] = _.uniq(event['array']);

  //sort
  result['sorted_users'] = _.sortBy(event['users'], function(o) { return o.age; });

  //filter
  result['filtered_users'] = _.filter(event['users'], function(o) { return !o.active; });

  callback(null, result);
}
)";

// A local stand-in for lodash in codedir/node_modules (no network): the three functions used.
constexpr char kFakeLodashPackage[] =
    R"({"name": "lodash", "version": "0.0.1-test", "main": "lodash.js"})";
constexpr char kFakeLodash[] = R"('use strict';
exports.uniq = (array) => array.filter((x, i) => array.indexOf(x) === i);
exports.sortBy = (array, key) => array.slice().sort((a, b) => key(a) - key(b));
exports.filter = (array, predicate) => array.filter(predicate);
)";

// Handlers probing the rest of the contract.
constexpr char kProbeJs[] = R"('use strict';
exports.context = (event, context, callback) => callback(null, context);
exports.environ = (event, context, callback) =>
  callback(null, { value: process.env.BAETYL_TEST_VALUE, path: process.env.PATH });
exports.echo = (event, context, callback) => callback(null, event);
exports.isBuffer = (event, context, callback) => callback(null, { buffer: Buffer.isBuffer(event) });
exports.none = (event, context, callback) => callback(null);
exports.text = (event, context, callback) => callback(null, 'plain text, not JSON');
exports.listing = (event, context, callback) => callback(null, [1, 'two', { three: 3 }]);
exports.slow = (event, context, callback) => {
  require('fs').writeFileSync('slow.started', '');  // the call is in the handler: see the harness
  setTimeout(() => callback(null, { slept: event.ms }), event.ms);
};
exports.asyncOk = async (event, context) => {
  await new Promise((resolve) => setTimeout(resolve, 20));
  return { async: true, topic: context.messageTopic, id: event.id };
};
exports.asyncFail = async (event) => {
  await new Promise((resolve) => setTimeout(resolve, 5));
  throw new RangeError('async failure ' + event.id);
};
exports.syncReturn = (event, context) => ({ returned: event.id });
exports.throws = () => {
  throw new Error('thrown synchronously');
};
)";

constexpr char kServiceYml[] = R"(functions:
  - name: 'sayhi'
    handler: 'sayhi.handler'
    codedir: 'var/db/baetyl/function-sayhi'
  - name: 'node85-sayhi'
    handler: 'index.handler'
    codedir: 'var/db/baetyl/function-sayhi'
  - name: 'lodash'
    handler: 'index.handler'
    codedir: 'var/db/baetyl/function-lodash'
)";

std::string probe_functions() {
  std::string yml;
  for (const char* name : {"context", "environ", "echo", "isBuffer", "none", "text", "listing",
                           "slow", "asyncOk", "asyncFail", "syncReturn", "throws"}) {
    yml += std::string("  - name: '") + name + "'\n    handler: 'probe." + name +
           "'\n    codedir: 'var/db/baetyl/function-sayhi'\n";
  }
  return yml;
}

void write_code(const TempDir& dir) {
  dir.write("var/db/baetyl/function-sayhi/sayhi.js", kSayhiJs);
  // The walkthrough's index.js ("Message handling with Local Function Service"), as in the docs.
  const std::string code = example_code("function-sayjs-code/index.js");
  ASSERT_FALSE(code.empty());
  dir.write("var/db/baetyl/function-sayhi/index.js", code);
  dir.write("var/db/baetyl/function-sayhi/probe.js", kProbeJs);
  dir.write("var/db/baetyl/function-lodash/index.js", kLodashJs);
  dir.write("var/db/baetyl/function-lodash/node_modules/lodash/package.json", kFakeLodashPackage);
  dir.write("var/db/baetyl/function-lodash/node_modules/lodash/lodash.js", kFakeLodash);
}

const RuntimeDescription kNode = {
    .binary = kBinaryDir / "bin" / "baetyl-function-node",
    .write_code = write_code,
    .service_yml = kServiceYml,
    .missing_module_error =
        "functions[0].handler: cannot load module 'missing': no module 'missing'",
    .missing_function_error = "has no export 'nope'",
    .slow_event = R"({"ms":800})",
    .slow_reply = json({{"slept", 800}}),
    .sayhi_reply_key = "say",
    .sayhi_reply_value = "hello world",
};

// One runtime serving every function, shared by the tests of the fixture.
class FunctionNodeTest : public SharedRuntimeTest<FunctionNodeTest> {
 protected:
  static void SetUpTestSuite() { start_shared_runtime(kNode, kServiceYml + probe_functions()); }
};

TEST_F(FunctionNodeTest, DocsSayhiWithDictAndBytesEvents) {
  FunctionMessage request = make_message("sayhi", R"({"id":1})");
  request.set_id(18446744073709551557ull);  // beyond int64 and double: the codec keeps 64 bits
  request.set_timestamp(-1234567890123);    // sint64, zigzag encoded
  FunctionMessage reply;
  ASSERT_TRUE(call(*stub_, request, reply).ok());
  expect_fields_but_the_payload_as_sent(request, reply);
  EXPECT_EQ(json::parse(reply.payload()),
            json({{"msg", {{"id", 1}}}, {"type", "dict"}, {"say", "hello world"}}));
  EXPECT_EQ(call_json("sayhi", "hi there"),
            json({{"msg", "hi there"}, {"type", "non-dict"}, {"say", "hello world"}}));
}

TEST_F(FunctionNodeTest, WalkthroughIndexWithDictEvent) {
  expect_walkthrough_index_with_dict_event("node85-sayhi");
}

TEST_F(FunctionNodeTest, WalkthroughIndexWithBytesEvent) {
  expect_walkthrough_index_with_bytes_event("node85-sayhi");
}

TEST_F(FunctionNodeTest, CallbackErrorIsAGrpcErrorWithItsMessage) {
  expect_walkthrough_error_is_a_grpc_error("node85-sayhi");
}

TEST_F(FunctionNodeTest, ThrownErrorIsAGrpcError) {
  FunctionMessage reply;
  grpc::Status status = call(*stub_, make_message("throws", "{}"), reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_NE(status.error_message().find("Error: thrown synchronously"), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("probe.js"), std::string::npos) << status.error_message();
}

TEST_F(FunctionNodeTest, ContextHasTheDocumentedKeys) { expect_context_has_the_documented_keys(); }

TEST_F(FunctionNodeTest, EnvironmentIsAvailable) { expect_environment_is_available(); }

TEST_F(FunctionNodeTest, DocsLodashGuideWithNodeModulesInCodedir) {
  json result = call_json("lodash", R"({
    "array": ["Jane", 1, "Jane", 1, 2],
    "users": [
      { "user": "barney", "age": 36, "active": true },
      { "user": "fred", "age": 40, "active": false },
      { "user": "Jane", "age": 32, "active": true }
    ]})");
  EXPECT_EQ(result, json::parse(R"({
    "unique_array": ["Jane", 1, 2],
    "sorted_users": [
      { "user": "Jane", "age": 32, "active": true },
      { "user": "barney", "age": 36, "active": true },
      { "user": "fred", "age": 40, "active": false }
    ],
    "filtered_users": [
      { "user": "fred", "age": 40, "active": false }
    ]})"));
}

TEST_F(FunctionNodeTest, AsyncHandlers) {
  EXPECT_EQ(call_json("asyncOk", R"({"id":9})"),
            json({{"async", true}, {"topic", "t"}, {"id", 9}}));
  FunctionMessage reply;
  grpc::Status status = call(*stub_, make_message("asyncFail", R"({"id":9})"), reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_NE(status.error_message().find("RangeError: async failure 9"), std::string::npos)
      << status.error_message();
  EXPECT_EQ(call_json("syncReturn", R"({"id":3})"), json({{"returned", 3}}));
}

TEST_F(FunctionNodeTest, EventIsJsonWhenValidElseBuffer) {
  EXPECT_EQ(call_json("echo", "[1,2]"), json({1, 2}));
  EXPECT_EQ(call_json("isBuffer", "{}"), json({{"buffer", false}}));
  EXPECT_EQ(call_json("isBuffer", "not json"), json({{"buffer", true}}));
  // Not UTF-8 at all: a Buffer, coming back unchanged.
  const std::string binary("\"\xff\x80\"", 4);
  EXPECT_EQ(call_json("isBuffer", binary), json({{"buffer", true}}));
  FunctionMessage reply;
  ASSERT_TRUE(call(*stub_, make_message("echo", binary), reply).ok());
  EXPECT_EQ(reply.payload(), binary);
}

TEST_F(FunctionNodeTest, ResultEncoding) { expect_result_encoding(); }

TEST_F(FunctionNodeTest, UnknownFunctionIsAnError) { expect_unknown_function_is_an_error(); }

TEST_F(FunctionNodeTest, AsynchronousCallsOverlap) {
  expect_four_slow_calls_overlap(R"({"ms":500})");
}

TEST_F(FunctionNodeTest, CallStreamAnswersBatchesInOrderWithErrorsInline) {
  expect_call_stream_answers_batches_in_order_with_errors_inline("node85-sayhi");
}

TEST_F(FunctionNodeTest, CallStreamRunsTheCallsOfABatchConcurrently) {
  expect_call_stream_runs_a_batch_concurrently(R"({"ms":500})", json({{"slept", 500}}));
}

TEST_F(FunctionNodeTest, CallStreamKeepsRepliesWithinTheClientsBound) {
  expect_call_stream_keeps_replies_within_the_clients_bound();
}

TEST_F(FunctionNodeTest, LogsInTheFormatOfTheCppModules) {
  expect_logs_in_the_format_of_the_cpp_modules(runtime_->output());
}

// ---- Each test below starts its own runtime ----

TEST(FunctionNodeStartTest, BadHandlersAreReportedAtStart) {
  expect_bad_handlers_are_reported_at_start(kNode);
}

TEST(FunctionNodeStartTest, BadConfigurationIsReportedAtStart) {
  expect_bad_codedir_is_reported_at_start(kNode);
  std::string output =
      start_failure(kNode,
                    "server:\n  message:\n    length:\n      max: lots\nfunctions:\n  - name: f\n"
                    "    handler: sayhi.handler\n    codedir: nowhere\n");
  EXPECT_NE(output.find("server.message.length.max: expected a size"), std::string::npos) << output;
  output = start_failure(kNode, "functions: [\n");
  EXPECT_NE(output.find("etc/baetyl/service.yml: "), std::string::npos) << output;
}

TEST(FunctionNodeStartTest, MissingConfigFileIsReported) {
  expect_missing_config_file_is_reported(kNode);
}

TEST(FunctionNodeStartTest, MessagesAboveTheLengthLimitAreRejected) {
  expect_messages_above_the_length_limit_are_rejected(kNode);
}

TEST(FunctionNodeStartTest, SigtermFinishesTheCallInFlightAndExitsZero) {
  expect_sigterm_finishes_the_call_in_flight_and_exits_zero(kNode);
}

TEST(FunctionNodeStartTest, SigtermWhenIdleExitsPromptly) {
  expect_sigterm_when_idle_exits_promptly(kNode);
}

TEST(FunctionNodeStartTest, SigtermWithAnOpenCallStreamExitsPromptly) {
  expect_sigterm_with_an_open_call_stream_exits_promptly(kNode);
}

TEST(FunctionNodeStartTest, ColdStartUntilTheFirstCall) {
  expect_cold_start_until_the_first_call(kNode);
}

TEST(FunctionNodeStartTest, Node85ImageNameWarns) {
  auto started = start(kNode, kServiceYml, {{"BAETYL_SERVICE_NAME", "function-node85-sayhi"}});
  ASSERT_TRUE(started->runtime->wait_ready()) << started->runtime->output();
  EXPECT_NE(started->runtime->output().find("[warn] Node 8.5 is not available"), std::string::npos)
      << started->runtime->output();
}

TEST(FunctionNodeStartTest, TlsWithClientCertificates) {
  expect_tls_with_client_certificates(kNode);
}

}  // namespace
}  // namespace baetyl::testing
