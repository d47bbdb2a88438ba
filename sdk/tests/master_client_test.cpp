// MasterClient against the real HTTP/1.1 test server of support/http_test_server.h, and the JSON
// forms of the inspect and update documents.
#include <chrono>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baetyl/api/inspect.h"
#include "baetyl/api/master_client.h"
#include "baetyl/http/client.h"
#include "support/http_test_server.h"

namespace {

using baetyl::api::ApiError;
using baetyl::api::Inspect;
using baetyl::api::MasterClient;
using baetyl::api::MasterClientOptions;
using baetyl::api::UpdateRequest;
using baetyl::testing::RecordedRequest;
using nlohmann::json;
using TestServer = baetyl::testing::HttpTestServer;
using namespace std::chrono_literals;

// What the master of the docs answers to an inspect, with reported keys (info, stats) and fields
// this code does not model (gpu_stats entries, process) inside the instance entries.
constexpr const char* kInspectDocument = R"({
  "error": "update failed: volume missing",
  "time": "2019-04-18T16:04:45.920152Z",
  "software": {"os": "linux", "arch": "amd64", "pwd": "/usr/local", "mode": "native",
               "compiler": "g++ 12.2.0", "bin_version": "1.0.0", "git_revision": "5630e33",
               "conf_version": "v5"},
  "hardware": {
    "mem_stats": {"total": 8248594432, "free": 1048576, "used": 4124297216, "used_percent": 50.5,
                  "swap_total": 2147483648, "swap_free": 2147483648},
    "cpu_stats": {"used_percent": 12.25},
    "disk_stats": {"path": "/usr/local", "total": 1000, "free": 400, "used": 600,
                   "used_percent": 60},
    "gpu_stats": [{"id": "0", "model": "Tesla", "mem_stats": {"total": 100}}]
  },
  "services": [
    {"name": "infer", "instances": [
      {"name": "infer", "status": "running", "start_time": "2019-04-18T16:04:45.920152Z",
       "process": {"id": 42, "name": "infer"}, "cpu_stats": {"used_percent": 1.5},
       "info": {"company": "baidu", "scope": "ai"},
       "stats": {"msg_count": 124, "infer_count": 120}}]},
    {"name": "hub", "instances": [{"name": "hub", "status": "restarting"}]}
  ],
  "volumes": [{"name": "infer-conf", "version": "v2"}, {"name": "hub-conf"}]
})";

class MasterClientTest : public ::testing::Test {
 protected:
  MasterClient client(const std::string& username = "agent") const {
    MasterClientOptions options;
    options.address = server_.unix_address();
    options.username = username;
    options.password = username.empty() ? "" : "token-1";
    options.timeout = 5s;
    return MasterClient(options);
  }

  void expect_call(const std::string& method, const std::string& target) const {
    ASSERT_EQ(server_.request_count(), 1u);
    const RecordedRequest request = server_.last_request();
    EXPECT_EQ(request.method, method);
    EXPECT_EQ(request.target, target);
    EXPECT_EQ(request.header("x-openedge-username"), "agent");
    EXPECT_EQ(request.header("x-openedge-password"), "token-1");
  }

  // The body the server received, parsed; also checks it was labelled as JSON.
  json received_json() const {
    const RecordedRequest request = server_.last_request();
    EXPECT_EQ(request.header("content-type"), "application/json");
    return json::parse(request.body);
  }

  TestServer server_;
};

TEST_F(MasterClientTest, InspectSystemGetsAndParsesTheDocument) {
  server_.respond(200, kInspectDocument, {{"Content-Type", "application/json"}});

  const Inspect inspect = client().inspect_system();

  expect_call("GET", "/v1/system/inspect");
  EXPECT_TRUE(server_.last_request().body.empty());
  EXPECT_EQ(inspect.error, "update failed: volume missing");
  EXPECT_EQ(inspect.time, "2019-04-18T16:04:45.920152Z");
  EXPECT_EQ(inspect.software.mode, "native");
  EXPECT_EQ(inspect.software.compiler, "g++ 12.2.0");
  EXPECT_EQ(inspect.software.conf_version, "v5");
  ASSERT_TRUE(inspect.hardware.mem_stats.has_value());
  EXPECT_EQ(inspect.hardware.mem_stats->total, 8248594432u);
  EXPECT_DOUBLE_EQ(inspect.hardware.mem_stats->used_percent, 50.5);
  EXPECT_EQ(inspect.hardware.mem_stats->swap_used, 0u);
  ASSERT_TRUE(inspect.hardware.cpu_stats.has_value());
  EXPECT_DOUBLE_EQ(inspect.hardware.cpu_stats->used_percent, 12.25);
  ASSERT_TRUE(inspect.hardware.disk_stats.has_value());
  EXPECT_EQ(inspect.hardware.disk_stats->path, "/usr/local");
  ASSERT_EQ(inspect.hardware.gpu_stats.size(), 1u);
  EXPECT_EQ(inspect.hardware.gpu_stats[0]["model"], "Tesla");
  ASSERT_EQ(inspect.services.size(), 2u);
  EXPECT_EQ(inspect.services[0].name, "infer");
  ASSERT_EQ(inspect.services[0].instances.size(), 1u);
  EXPECT_EQ(inspect.services[0].instances[0]["status"], "running");
  EXPECT_EQ(inspect.services[0].instances[0]["stats"]["msg_count"], 124);
  EXPECT_EQ(inspect.services[0].instances[0]["info"]["company"], "baidu");
  ASSERT_EQ(inspect.volumes.size(), 2u);
  EXPECT_EQ(inspect.volumes[0].version, "v2");
  EXPECT_EQ(inspect.volumes[1].version, "");
}

TEST_F(MasterClientTest, InspectDocumentKeepsEveryKey) {
  server_.respond(200, R"({"time":"t","volumes":[{"name":"a","path":"var/db/baetyl/a"}],"x":1})");
  const json document = client().inspect_document();
  expect_call("GET", "/v1/system/inspect");
  EXPECT_EQ(document["volumes"][0]["path"], "var/db/baetyl/a");
  EXPECT_EQ(document["x"], 1);

  server_.respond(200, "[1]");
  EXPECT_THROW(client().inspect_document(), ApiError);
}

TEST_F(MasterClientTest, UpdateSystemPutsTheRequest) {
  server_.respond(200);
  client().update_system(UpdateRequest{"MST", "var/db/baetyl/bin/baetyl", "trace-7"});
  expect_call("PUT", "/v1/system/update");
  EXPECT_EQ(received_json(),
            json({{"type", "MST"}, {"path", "var/db/baetyl/bin/baetyl"}, {"trace", "trace-7"}}));
}

TEST_F(MasterClientTest, AvailablePortReturnsThePort) {
  server_.respond(200, R"({"port":"12345"})");
  EXPECT_EQ(client().available_port(), "12345");
  expect_call("GET", "/v1/ports/available");

  server_.respond(200, R"({"port":50051})");  // a number is taken too
  EXPECT_EQ(client().available_port(), "50051");
}

TEST_F(MasterClientTest, StartInstancePutsTheEnvironment) {
  server_.respond(200);
  client().start_instance("function-python", "function-python.sayhi.1",
                          {{"BAETYL_SERVICE_INSTANCE_ADDRESS", "127.0.0.1:50051"}, {"EMPTY", ""}});
  expect_call("PUT", "/v1/services/function-python/instances/function-python.sayhi.1/start");
  EXPECT_EQ(received_json(),
            json({{"BAETYL_SERVICE_INSTANCE_ADDRESS", "127.0.0.1:50051"}, {"EMPTY", ""}}));
}

TEST_F(MasterClientTest, StartInstanceWithoutEnvironmentSendsAnEmptyObject) {
  server_.respond(200);
  client().start_instance("svc", "svc.i2", {});
  expect_call("PUT", "/v1/services/svc/instances/svc.i2/start");
  EXPECT_EQ(received_json(), json::object());
}

TEST_F(MasterClientTest, StopInstancePutsNoBody) {
  server_.respond(200);
  client().stop_instance("function-python", "function-python.sayhi.1");
  expect_call("PUT", "/v1/services/function-python/instances/function-python.sayhi.1/stop");
  EXPECT_TRUE(server_.last_request().body.empty());
  EXPECT_EQ(server_.last_request().header("content-length"), "0");
}

TEST_F(MasterClientTest, ReportInstancePutsTheStats) {
  server_.respond(200);
  const json stats = {{"stats", {{"msg_count", 344}, {"infer_count", 320}}},
                      {"info", {{"company", "baidu"}}}};
  client().report_instance("infer", "infer", stats);
  expect_call("PUT", "/v1/services/infer/instances/infer/report");
  EXPECT_EQ(received_json(), stats);
}

TEST_F(MasterClientTest, NamesArePercentEncodedPathSegments) {
  server_.respond(200);
  client().stop_instance("my svc/x", "a?b#c%d");
  EXPECT_EQ(server_.last_request().target,
            "/v1/services/my%20svc%2Fx/instances/a%3Fb%23c%25d/stop");

  server_.respond(200);
  client().stop_instance("..", "\xe4\xb8\xad.i1");
  EXPECT_EQ(server_.last_request().target, "/v1/services/%2E%2E/instances/%E4%B8%AD.i1/stop");
}

TEST_F(MasterClientTest, EmptyNamesAndNonObjectReportsAreRejectedLocally) {
  EXPECT_THROW(client().stop_instance("", "x"), std::invalid_argument);
  EXPECT_THROW(client().start_instance("x", "", {}), std::invalid_argument);
  EXPECT_THROW(client().report_instance("x", "x", json::array({1, 2})), std::invalid_argument);
  EXPECT_EQ(server_.request_count(), 0u);
}

TEST_F(MasterClientTest, NoAuthHeadersWithoutAUsername) {
  server_.respond(200, R"({"port":"1"})");
  client("").available_port();
  const RecordedRequest request = server_.last_request();
  EXPECT_FALSE(request.has("x-openedge-username"));
  EXPECT_FALSE(request.has("x-openedge-password"));
}

TEST_F(MasterClientTest, VersionAndTcpAddressAreHonoured) {
  server_.respond(200, "{}");
  MasterClientOptions options;
  options.address = server_.tcp_address();
  options.version = "v2";
  options.username = "agent";
  options.password = "token-1";
  const Inspect inspect = MasterClient(options).inspect_system();
  expect_call("GET", "/v2/system/inspect");
  EXPECT_TRUE(inspect.services.empty());
  EXPECT_TRUE(inspect.time.empty());

  server_.respond(200);
  options.version.clear();  // empty means v1
  MasterClient(options).stop_instance("a", "b");
  EXPECT_EQ(server_.last_request().target, "/v1/services/a/instances/b/stop");
}

TEST_F(MasterClientTest, UnauthorizedBecomesApiErrorWithStatusAndBody) {
  server_.respond(401, "account unauthorized\n");
  try {
    client().start_instance("a", "b", {});
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 401);
    EXPECT_EQ(e.body(), "account unauthorized\n");
    EXPECT_STREQ(e.what(),
                 "master API PUT /v1/services/a/instances/b/start returned 401: "
                 "account unauthorized");
  }
}

TEST_F(MasterClientTest, EveryCallReportsFailureStatuses) {
  server_.respond(400, "service (x) not found");
  MasterClient master = client();
  EXPECT_THROW(master.inspect_system(), ApiError);
  EXPECT_THROW(master.update_system({}), ApiError);
  EXPECT_THROW(master.available_port(), ApiError);
  EXPECT_THROW(master.start_instance("x", "y", {}), ApiError);
  EXPECT_THROW(master.stop_instance("x", "y"), ApiError);
  EXPECT_THROW(master.report_instance("x", "y", json::object()), ApiError);
  EXPECT_EQ(server_.request_count(), 6u);

  server_.respond(500);
  try {
    master.stop_instance("x", "y");
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 500);
    EXPECT_STREQ(e.what(), "master API PUT /v1/services/x/instances/y/stop returned 500");
  }
}

TEST_F(MasterClientTest, MalformedResponsesBecomeApiErrors) {
  server_.respond(200, "{\"time\": ");
  try {
    client().inspect_system();
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 200);
    EXPECT_EQ(e.body(), "{\"time\": ");
    EXPECT_EQ(
        std::string(e.what()).rfind("master API GET /v1/system/inspect returned malformed JSON", 0),
        0u)
        << e.what();
  }

  server_.respond(200, R"({"services": "none"})");
  try {
    client().inspect_system();
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_NE(std::string(e.what()).find("invalid inspect document"), std::string::npos)
        << e.what();
  }

  for (const char* body : {R"({"nope":1})", R"({"port":""})", R"([1])", R"({"port":-1})"}) {
    server_.respond(200, body);
    try {
      client().available_port();
      ADD_FAILURE() << "accepted " << body;
    } catch (const ApiError& e) {
      EXPECT_NE(std::string(e.what()).find("returned no port"), std::string::npos) << e.what();
    }
  }
}

TEST_F(MasterClientTest, UnreachableMasterThrowsHttpError) {
  MasterClientOptions options;
  options.address = "unix:///tmp/baetyl-no-such-dir/baetyl.sock";
  EXPECT_THROW(MasterClient(options).inspect_system(), baetyl::http::HttpError);
  options.address = "tcp://127.0.0.1";
  EXPECT_THROW(MasterClient{options}, std::invalid_argument);
}

TEST_F(MasterClientTest, SilentMasterTimesOut) {
  server_.go_silent();
  MasterClientOptions options;
  options.address = server_.unix_address();
  options.timeout = 300ms;
  const auto start = std::chrono::steady_clock::now();
  try {
    MasterClient(options).report_instance("a", "b", json::object());
    FAIL() << "expected HttpError";
  } catch (const baetyl::http::HttpError& e) {
    EXPECT_TRUE(e.timed_out());
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
}

TEST(InspectJson, RoundTripKeepsEveryFieldAndUnknownInstanceKeys) {
  const json original = json::parse(kInspectDocument);
  const Inspect inspect = original.get<Inspect>();
  const json back = inspect;
  EXPECT_EQ(back, original) << back.dump(2);
  EXPECT_EQ(json(json::parse(back.dump()).get<Inspect>()), original);
}

TEST(InspectJson, UnknownTopLevelKeysAreIgnored) {
  const Inspect inspect = json::parse(R"({"time":"t","go_version":"go1.12","extra":{"a":1}})");
  EXPECT_EQ(inspect.time, "t");
  EXPECT_EQ(json(inspect), json({{"time", "t"}}));
}

TEST(InspectJson, EmptyFieldsAreOmitted) {
  EXPECT_EQ(json(Inspect{}), json::object());

  Inspect inspect;
  inspect.software.os = "linux";
  inspect.hardware.cpu_stats = baetyl::api::CpuStats{};  // present but zero
  inspect.services.push_back({"hub", {}});
  inspect.volumes.push_back({"hub-conf", ""});
  EXPECT_EQ(json(inspect), json::parse(R"({
    "software": {"os": "linux"},
    "hardware": {"cpu_stats": {}},
    "services": [{"name": "hub"}],
    "volumes": [{"name": "hub-conf"}]
  })"));
}

TEST(InspectJson, WrongTypesThrow) {
  EXPECT_THROW(json::parse("[]").get<Inspect>(), json::exception);
  EXPECT_THROW(json::parse(R"({"time": 5})").get<Inspect>(), json::exception);
  EXPECT_THROW(json::parse(R"({"services": [{"name": "a", "instances": [1]}]})").get<Inspect>(),
               json::exception);
  EXPECT_THROW(json::parse(R"({"hardware": {"mem_stats": {"total": "x"}}})").get<Inspect>(),
               json::exception);
  // null means absent
  EXPECT_NO_THROW(json::parse(R"({"time": null, "hardware": {"mem_stats": null}})").get<Inspect>());
}

TEST(InspectJson, Rfc3339Time) {
  using std::chrono::system_clock;
  EXPECT_EQ(baetyl::api::to_rfc3339(system_clock::time_point{}), "1970-01-01T00:00:00Z");
  const auto time = system_clock::time_point{std::chrono::seconds{1555603485}} +
                    std::chrono::microseconds{920150};
  EXPECT_EQ(baetyl::api::to_rfc3339(time), "2019-04-18T16:04:45.92015Z");
}

TEST(UpdateRequestJson, SerialisesAllThreeKeys) {
  EXPECT_EQ(json(UpdateRequest{}), json({{"type", "APP"}, {"path", ""}, {"trace", ""}}));
  EXPECT_EQ(
      json(UpdateRequest{"APP", "var/db/baetyl/app/v2/application.yml", "t1"}),
      json({{"type", "APP"}, {"path", "var/db/baetyl/app/v2/application.yml"}, {"trace", "t1"}}));
}

TEST(UpdateRequestJson, AcceptsTheLegacyFileKeyAndDefaultsTheType) {
  auto request = json::parse(R"({"file": "var/db/baetyl/app.yml"})").get<UpdateRequest>();
  EXPECT_EQ(request.type, "APP");
  EXPECT_EQ(request.path, "var/db/baetyl/app.yml");
  EXPECT_EQ(request.trace, "");

  request = json::parse(R"({"type": "", "path": "new", "file": "old", "trace": "x"})")
                .get<UpdateRequest>();
  EXPECT_EQ(request.type, "APP");
  EXPECT_EQ(request.path, "new");
  EXPECT_EQ(request.trace, "x");

  request = json::parse(R"({"type": "MST", "path": "bin/baetyl"})").get<UpdateRequest>();
  EXPECT_EQ(request.type, "MST");
  EXPECT_EQ(request.path, "bin/baetyl");
}

}  // namespace
