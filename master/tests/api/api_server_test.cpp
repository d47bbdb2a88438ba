// The master's REST API server over real sockets: the SDK's MasterClient, SDK HTTP requests with
// hand-picked headers and bodies, and raw POSIX sockets for connection-level behaviour.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <nlohmann/json.hpp>

#include "api/api_router.h"
#include "api/api_server.h"
#include "api/worker_pool.h"
#include "baetyl/api/master_client.h"
#include "baetyl/http/client.h"
#include "baetyl/testing/temp_dir.h"

namespace {

using baetyl::api::ApiError;
using baetyl::api::MasterClient;
using baetyl::api::MasterClientOptions;
using baetyl::api::UpdateRequest;
using baetyl::master::ApiBackend;
using baetyl::master::ApiForbidden;
using baetyl::master::ApiRoute;
using baetyl::master::ApiServer;
using baetyl::master::ApiServerOptions;
using baetyl::testing::TempDir;
using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kUser = "agent";
constexpr const char* kToken = "token-1";

// What the server calls: records every call and returns canned data. A call can be made to throw
// (fail_with) or to block until released (hold_stop).
class RecordingBackend : public ApiBackend {
 public:
  struct Call {
    std::string what;
    std::string service;
    std::string instance;
    std::string caller;
    std::map<std::string, std::string> env;
    json report;
    UpdateRequest update;
  };

  bool authenticate(const std::string& username, const std::string& password) override {
    std::lock_guard lock(mutex_);
    auth_attempts_.emplace_back(username, password);
    return (username == kUser && password == kToken) || (username == "hub" && password == "t2");
  }
  json inspect() override {
    record({"inspect"});
    return json{{"time", "2019-04-18T16:04:45Z"},
                {"software", {{"mode", "native"}, {"os", "linux"}}},
                {"services", {{{"name", "hub"}, {"instances", {{{"name", "hub"}}}}}}}};
  }
  void update(const std::string& caller, const UpdateRequest& request) override {
    Call call{"update", "", "", caller};
    call.update = request;
    record(std::move(call));
  }
  std::string available_port() override {
    record({"port"});
    return "50123";
  }
  void start_instance(const std::string& caller, const std::string& service,
                      const std::string& instance,
                      const std::map<std::string, std::string>& env) override {
    Call call{"start", service, instance, caller};
    call.env = env;
    record(std::move(call));
  }
  void stop_instance(const std::string& caller, const std::string& service,
                     const std::string& instance) override {
    record({"stop", service, instance, caller});
    std::unique_lock lock(mutex_);
    ++stops_waiting_;
    changed_.notify_all();
    changed_.wait(lock, [this] { return !hold_stop_; });
    --stops_waiting_;
  }
  void report_instance(const std::string& caller, const std::string& service,
                       const std::string& instance, const json& report) override {
    Call call{"report", service, instance, caller};
    call.report = report;
    record(std::move(call));
  }

  void fail_with(std::string message, bool forbidden = false) {
    std::lock_guard lock(mutex_);
    failure_ = std::move(message);
    forbidden_ = forbidden;
  }
  void hold_stop(bool hold) {
    std::lock_guard lock(mutex_);
    hold_stop_ = hold;
    changed_.notify_all();
  }
  bool wait_for_stops_waiting(int count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 5s, [&] { return stops_waiting_ == count; });
  }
  std::vector<Call> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  Call last_call() const {
    std::lock_guard lock(mutex_);
    return calls_.empty() ? Call{} : calls_.back();
  }
  std::vector<std::pair<std::string, std::string>> auth_attempts() const {
    std::lock_guard lock(mutex_);
    return auth_attempts_;
  }

 private:
  void record(Call call) {
    std::lock_guard lock(mutex_);
    calls_.push_back(std::move(call));
    if (!failure_.empty() && forbidden_) throw ApiForbidden(failure_);
    if (!failure_.empty()) throw std::runtime_error(failure_);
  }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Call> calls_;
  std::vector<std::pair<std::string, std::string>> auth_attempts_;
  std::string failure_;
  bool forbidden_ = false;
  bool hold_stop_ = false;
  int stops_waiting_ = 0;
};

struct RawResponse {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// One HTTP connection on a plain POSIX socket, so the tests control every byte and every wait.
class RawConnection {
 public:
  explicit RawConnection(const std::string& address) {
    if (address.starts_with("unix://")) {
      const std::string path = address.substr(7);
      fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
      connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    } else {
      const auto colon = address.rfind(':');
      fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    }
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      const auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // The next response (with a Content-Length body); nullopt when the connection ends first or
  // nothing complete arrives within `wait`.
  std::optional<RawResponse> read_response(std::chrono::milliseconds wait = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    std::size_t head_end;
    while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(deadline)) return std::nullopt;
    }
    RawResponse response;
    const std::string head = buffer_.substr(0, head_end);
    response.status = static_cast<unsigned>(std::stoi(head.substr(9, 3)));
    std::size_t line = head.find("\r\n");
    while (line != std::string::npos) {
      const std::size_t next = head.find("\r\n", line + 2);
      const std::string field =
          head.substr(line + 2, next == std::string::npos ? std::string::npos : next - line - 2);
      const auto colon = field.find(':');
      std::string name = field.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      response.headers[name] = field.substr(field.find_first_not_of(' ', colon + 1));
      line = next;
    }
    const std::size_t length = response.headers.count("content-length")
                                   ? std::stoul(response.headers["content-length"])
                                   : 0;
    while (buffer_.size() < head_end + 4 + length) {
      if (!fill(deadline)) return std::nullopt;
    }
    response.body = buffer_.substr(head_end + 4, length);
    buffer_.erase(0, head_end + 4 + length);
    return response;
  }

  // True when the server ends the connection (EOF or reset) within `wait`, with nothing else sent.
  bool closed_within(std::chrono::milliseconds wait) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (fill(deadline)) {
    }
    return eof_ && buffer_.empty();
  }

 private:
  bool fill(std::chrono::steady_clock::time_point deadline) {
    if (eof_) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char chunk[4096];
    const auto n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

std::string raw_request(const std::string& method, const std::string& target,
                        const std::string& body = {}, const std::string& extra_headers = {}) {
  return method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nx-openedge-username: " + kUser +
         "\r\nx-openedge-password: " + kToken + "\r\n" + extra_headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

class ApiServerTest : public ::testing::Test {
 protected:
  ApiServerTest() {
    // BAETYL_TEST_VERBOSE=1 shows the server's log.
    if (std::getenv("BAETYL_TEST_VERBOSE")) {
      logger_ = std::make_shared<spdlog::logger>(
          "api-test", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
      logger_->set_level(spdlog::level::debug);
    } else {
      logger_ = std::make_shared<spdlog::logger>("api-test",
                                                 std::make_shared<spdlog::sinks::null_sink_mt>());
    }
  }
  ~ApiServerTest() override {
    backend_.hold_stop(false);
    if (server_) server_->stop();
  }

  std::string socket_path() const { return (dir_.path() / "run" / "baetyl.sock").string(); }

  ApiServer& start(std::string address = {}, std::chrono::milliseconds timeout = 5s,
                   std::size_t body_limit = 1 << 20) {
    ApiServerOptions options;
    options.address = address.empty() ? "unix://" + socket_path() : std::move(address);
    options.timeout = timeout;
    options.body_limit = body_limit;
    server_ = std::make_unique<ApiServer>(options, backend_, logger_);
    server_->start();
    return *server_;
  }

  MasterClient client(const std::string& username = kUser, const std::string& password = kToken) {
    MasterClientOptions options;
    options.address = server_->address();
    options.username = username;
    options.password = password;
    options.timeout = 10s;
    return MasterClient(options);
  }

  baetyl::http::Response send(const std::string& method, const std::string& path,
                              std::string body = {},
                              baetyl::http::Headers headers = {{"x-openedge-username", kUser},
                                                               {"x-openedge-password", kToken}}) {
    baetyl::http::ClientOptions options;
    options.address = server_->address();
    options.timeout = 10s;
    return baetyl::http::Client(options).send({method, path, std::move(headers), std::move(body)});
  }

  TempDir dir_;
  RecordingBackend backend_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<ApiServer> server_;
};

// --- the SDK client end to end ---

void exercise_every_call(MasterClient client, RecordingBackend& backend) {
  const auto inspect = client.inspect_system();
  EXPECT_EQ(inspect.software.mode, "native");
  EXPECT_EQ(inspect.time, "2019-04-18T16:04:45Z");
  ASSERT_EQ(inspect.services.size(), 1u);
  EXPECT_EQ(inspect.services[0].name, "hub");

  EXPECT_EQ(client.available_port(), "50123");

  client.update_system(UpdateRequest{"MST", "var/db/baetyl/bin/baetyl", "trace-7"});
  auto call = backend.last_call();
  EXPECT_EQ(call.what, "update");
  EXPECT_EQ(call.update.type, "MST");
  EXPECT_EQ(call.update.path, "var/db/baetyl/bin/baetyl");
  EXPECT_EQ(call.update.trace, "trace-7");
  EXPECT_EQ(call.caller, kUser);

  client.start_instance("function-python", "function-python.sayhi.1",
                        {{"BAETYL_SERVICE_INSTANCE_ADDRESS", "127.0.0.1:50051"}, {"EMPTY", ""}});
  call = backend.last_call();
  EXPECT_EQ(call.what, "start");
  EXPECT_EQ(call.service, "function-python");
  EXPECT_EQ(call.instance, "function-python.sayhi.1");
  EXPECT_EQ(call.env, (std::map<std::string, std::string>{
                          {"BAETYL_SERVICE_INSTANCE_ADDRESS", "127.0.0.1:50051"}, {"EMPTY", ""}}));

  client.stop_instance("function-python", "function-python.sayhi.1");
  call = backend.last_call();
  EXPECT_EQ(call.what, "stop");
  EXPECT_EQ(call.instance, "function-python.sayhi.1");

  const json stats = {{"stats", {{"msg_count", 344}}}, {"info", {{"company", "baidu"}}}};
  client.report_instance("infer", "infer", stats);
  call = backend.last_call();
  EXPECT_EQ(call.what, "report");
  EXPECT_EQ(call.service, "infer");
  EXPECT_EQ(call.report, stats);
  EXPECT_EQ(backend.calls().size(), 6u);
}

TEST_F(ApiServerTest, MasterClientOverUnixSocket) {
  start();
  EXPECT_EQ(server_->address(), "unix://" + socket_path());
  exercise_every_call(client(), backend_);
  ASSERT_FALSE(backend_.auth_attempts().empty());
  EXPECT_EQ(backend_.auth_attempts().back(),
            std::make_pair(std::string(kUser), std::string(kToken)));
}

TEST_F(ApiServerTest, MasterClientOverTcpWithPortZeroResolved) {
  start("tcp://127.0.0.1:0");
  const std::string address = server_->address();
  ASSERT_TRUE(address.starts_with("tcp://127.0.0.1:")) << address;
  EXPECT_NE(address, "tcp://127.0.0.1:0");
  exercise_every_call(client(), backend_);
}

TEST_F(ApiServerTest, RelativeUnixPathIsMadeAbsolute) {
  const auto cwd = fs::current_path();
  fs::current_path(dir_.path());
  try {
    start("unix://rel/api.sock");
  } catch (...) {
    fs::current_path(cwd);
    throw;
  }
  fs::current_path(cwd);
  EXPECT_EQ(server_->address(), "unix://" + (dir_.path() / "rel" / "api.sock").string());
  EXPECT_EQ(client().available_port(), "50123");
}

TEST_F(ApiServerTest, NamesArePercentDecoded) {
  start();
  client().stop_instance("my svc/x", "a?b#c%d");
  EXPECT_EQ(backend_.last_call().service, "my svc/x");
  EXPECT_EQ(backend_.last_call().instance, "a?b#c%d");
  client().stop_instance("..", "\xe4\xb8\xad.i1");
  EXPECT_EQ(backend_.last_call().service, "..");
  EXPECT_EQ(backend_.last_call().instance, "\xe4\xb8\xad.i1");

  EXPECT_EQ(send("PUT", "/v1/services/a%zz/instances/b/stop").status, 400);
  EXPECT_EQ(send("PUT", "/v1/services/a%2/instances/b/stop").status, 400);
  EXPECT_EQ(send("PUT", "/v1/services/a%00/instances/b/stop").status, 400);
  EXPECT_EQ(send("GET", "/v1/ports/available?x=1").status, 200);
}

// --- authentication ---

TEST_F(ApiServerTest, MissingOrWrongCredentialsGet401) {
  start();
  for (const baetyl::http::Headers& headers : std::vector<baetyl::http::Headers>{
           {},
           {{"x-openedge-username", kUser}},
           {{"x-openedge-username", kUser}, {"x-openedge-password", "wrong"}},
           {{"x-openedge-password", kToken}},
           {{"x-openedge-username", ""}, {"x-openedge-password", kToken}},
           {{"x-baetyl-username", kUser}, {"x-openedge-password", kToken}},
       }) {
    const auto response = send("GET", "/v1/system/inspect", {}, headers);
    EXPECT_EQ(response.status, 401);
    EXPECT_EQ(response.body, "account unauthorized");
  }
  EXPECT_TRUE(backend_.calls().empty());

  try {
    client(kUser, "wrong").stop_instance("a", "b");
    FAIL() << "no error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 401);
    EXPECT_EQ(e.body(), "account unauthorized");
  }
  EXPECT_THROW(client("", "").available_port(), ApiError);
  EXPECT_TRUE(backend_.calls().empty());
}

TEST_F(ApiServerTest, BaetylHeadersAreAcceptedToo) {
  start();
  const auto response = send("GET", "/v1/ports/available", {},
                             {{"x-baetyl-username", "hub"}, {"x-baetyl-password", "t2"}});
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(json::parse(response.body), json({{"port", "50123"}}));
  EXPECT_EQ(backend_.auth_attempts().back(), std::make_pair(std::string("hub"), std::string("t2")));

  // Header names are case-insensitive.
  EXPECT_EQ(send("GET", "/v1/ports/available", {},
                 {{"X-OpenEdge-Username", "hub"}, {"X-OpenEdge-Password", "t2"}})
                .status,
            200);
}

// --- routing ---

TEST_F(ApiServerTest, EveryRouteWithAndWithoutVersionPrefix) {
  start();
  struct Route {
    const char* method;
    const char* path;
    const char* body;
    const char* call;
  };
  const Route routes[] = {
      {"GET", "/system/inspect", "", "inspect"},
      {"PUT", "/system/update", R"({"type":"APP","path":"app.yml"})", "update"},
      {"GET", "/ports/available", "", "port"},
      {"PUT", "/services/s/instances/i/start", R"({"A":"1"})", "start"},
      {"PUT", "/services/s/instances/i/stop", "", "stop"},
      {"PUT", "/services/s/instances/i/report", R"({"k":1})", "report"},
  };
  for (const std::string prefix : {"/v1", ""}) {
    for (const Route& route : routes) {
      SCOPED_TRACE(std::string(route.method) + " " + prefix + route.path);
      const auto before = backend_.calls().size();
      const auto response = send(route.method, prefix + route.path, route.body);
      EXPECT_EQ(response.status, 200) << response.body;
      ASSERT_EQ(backend_.calls().size(), before + 1);
      EXPECT_EQ(backend_.last_call().what, route.call);
      if (std::string(route.call) == "inspect") {
        EXPECT_EQ(response.headers.at("content-type"), "application/json");
        EXPECT_EQ(json::parse(response.body)["software"]["mode"], "native");
      } else if (std::string(route.call) == "port") {
        EXPECT_EQ(response.headers.at("content-type"), "application/json");
        EXPECT_EQ(response.body, R"({"port":"50123"})");
      } else {
        EXPECT_EQ(response.body, "");
      }
    }
  }
}

TEST_F(ApiServerTest, UnknownPathsGet404) {
  start();
  for (const char* path :
       {"/", "/v1", "/v2/system/inspect", "/v1/system", "/v1/system/inspect/", "//system/inspect",
        "/v1//system/inspect", "/v1/v1/system/inspect", "/v1/services/a/instances/b/restart",
        "/v1/services//instances/b/start", "/v1/services/a/instances//start",
        "/v1/services/a/instance/b/start", "/v1/ports/available/x", "/system/inspect/more"}) {
    SCOPED_TRACE(path);
    const auto response = send("GET", path);
    EXPECT_EQ(response.status, 404);
    EXPECT_EQ(send("PUT", path).status, 404);
  }
  EXPECT_TRUE(backend_.calls().empty());
}

TEST_F(ApiServerTest, WrongMethodOnAKnownPathGets405) {
  start();
  auto response = send("POST", "/v1/system/inspect");
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(response.headers.at("allow"), "GET");
  response = send("GET", "/system/update");
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(response.headers.at("allow"), "PUT");
  EXPECT_EQ(send("DELETE", "/v1/services/a/instances/b/stop").status, 405);
  EXPECT_EQ(send("PUT", "/v1/ports/available").status, 405);
  EXPECT_EQ(send("POST", "/v1/services/a/instances/b/start", "{}").status, 405);
  EXPECT_TRUE(backend_.calls().empty());
}

TEST(ApiRouterTest, MatchesRoutes) {
  using baetyl::master::match_route;
  auto match = match_route("PUT", "/v1/services/hub/instances/hub.i2/report?x=y");
  EXPECT_EQ(match.status, 200u);
  EXPECT_EQ(match.route, ApiRoute::report);
  EXPECT_EQ(match.service, "hub");
  EXPECT_EQ(match.instance, "hub.i2");
  EXPECT_EQ(match_route("GET", "/ports/available").route, ApiRoute::available_port);
  EXPECT_EQ(match_route("GET", "*").status, 404u);
  EXPECT_EQ(match_route("GET", "").status, 404u);
  EXPECT_EQ(match_route("GET", "http://localhost/v1/system/inspect").status, 404u);
  EXPECT_EQ(match_route("get", "/v1/system/inspect").status, 405u);
}

TEST(ApiRouterTest, JsonNestingDepthSkipsStrings) {
  using baetyl::master::json_nesting_depth;
  EXPECT_EQ(json_nesting_depth("1"), 0u);
  EXPECT_EQ(json_nesting_depth(R"({"a":[1,{"b":[]}]})"), 4u);
  EXPECT_EQ(json_nesting_depth(R"({"a":"[[[[\"{{{"})"), 1u);
  EXPECT_EQ(json_nesting_depth(std::string(1000, '[')), 1000u);
}

TEST(WorkerPoolTest, GrowsOnDemandUpToTheLimitAndBoundsTheQueue) {
  baetyl::master::WorkerPool pool(2, 3);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  // Destroyed before the pool, so a failed assertion cannot leave its threads blocked in join.
  struct Release {
    std::promise<void>& promise;
    bool done = false;
    void operator()() {
      if (!std::exchange(done, true)) promise.set_value();
    }
    ~Release() { (*this)(); }
  } release_once{release};
  std::atomic<int> started{0};
  std::atomic<int> ran{0};
  const auto blocker = [&] {
    ++started;
    released.wait();
    ++ran;
  };
  EXPECT_TRUE(pool.submit(blocker));
  EXPECT_TRUE(pool.submit(blocker));
  EXPECT_EQ(pool.thread_count(), 2u);
  for (int i = 0; i < 500 && started < 2; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(started.load(), 2);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(pool.submit(blocker));
  EXPECT_EQ(pool.thread_count(), 2u);
  EXPECT_FALSE(pool.submit(blocker));  // queue full
  release_once();
  for (int i = 0; i < 200 && ran < 5; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(ran.load(), 5);
  pool.stop();
  EXPECT_FALSE(pool.submit([] {}));
  pool.restart();
  std::promise<void> done;
  EXPECT_TRUE(pool.submit([&] { done.set_value(); }));
  EXPECT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
}

TEST(WorkerPoolTest, StopDropsQueuedTasks) {
  baetyl::master::WorkerPool pool(1, 10);
  std::promise<void> started;
  std::atomic<bool> release{false};
  std::atomic<int> ran{0};
  EXPECT_TRUE(pool.submit([&] {
    started.set_value();
    while (!release) std::this_thread::sleep_for(1ms);
  }));
  started.get_future().wait();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(pool.submit([&] { ++ran; }));
  auto stopping = std::async(std::launch::async, [&] { pool.stop(); });
  std::this_thread::sleep_for(50ms);
  release = true;
  stopping.get();
  EXPECT_EQ(ran.load(), 0);
}

// --- bodies ---

TEST_F(ApiServerTest, BadBodiesGet400) {
  start();
  struct Case {
    const char* path;
    std::string body;
    const char* expected_text;
  };
  const Case cases[] = {
      {"/v1/system/update", "{", "invalid JSON body"},
      {"/v1/system/update", "", "empty request body"},
      {"/v1/system/update", "[]", "update body must be a JSON object"},
      {"/v1/system/update", R"({"path":5})", "invalid update request"},
      {"/v1/services/s/instances/i/start", "[1]", "start body must be a JSON object"},
      {"/v1/services/s/instances/i/start", R"({"A":"x","PORT":5})", "\"PORT\" must be a string"},
      {"/v1/services/s/instances/i/start", R"({"A":true})", "\"A\" must be a string"},
      {"/v1/services/s/instances/i/start", "{\"A\":", "invalid JSON body"},
      {"/v1/services/s/instances/i/report", "", "empty request body"},
      {"/v1/services/s/instances/i/report", "[1,2]", "report body must be a JSON object"},
      {"/v1/services/s/instances/i/report",
       "{\"a\":" + std::string(200, '[') + std::string(200, ']') + "}", "nested too deeply"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.path) + " " + c.body.substr(0, 40));
    const auto response = send("PUT", c.path, c.body);
    EXPECT_EQ(response.status, 400);
    EXPECT_NE(response.body.find(c.expected_text), std::string::npos) << response.body;
    EXPECT_TRUE(response.headers.at("content-type").starts_with("text/plain"));
  }
  EXPECT_TRUE(backend_.calls().empty());
}

TEST_F(ApiServerTest, EmptyOrNullStartBodyMeansNoExtraEnvironment) {
  start();
  for (const char* body : {"", "null", " {} "}) {
    EXPECT_EQ(send("PUT", "/v1/services/s/instances/i/start", body).status, 200);
    EXPECT_TRUE(backend_.last_call().env.empty());
  }
  EXPECT_EQ(backend_.calls().size(), 3u);
}

TEST_F(ApiServerTest, UpdateAcceptsTheLegacyFileFieldAndDefaultsTheType) {
  start();
  EXPECT_EQ(
      send("PUT", "/v1/system/update", R"({"file":"var/db/baetyl/app.yml","trace":"t1"})").status,
      200);
  const auto call = backend_.last_call();
  EXPECT_EQ(call.update.type, "APP");
  EXPECT_EQ(call.update.path, "var/db/baetyl/app.yml");
  EXPECT_EQ(call.update.trace, "t1");

  EXPECT_EQ(send("PUT", "/system/update", R"({"type":"","path":"a.yml","file":"b.yml"})").status,
            200);
  EXPECT_EQ(backend_.last_call().update.type, "APP");
  EXPECT_EQ(backend_.last_call().update.path, "a.yml");
}

TEST_F(ApiServerTest, OversizedBodyGets413) {
  start({}, 5s, 1024);
  const auto response = send("PUT", "/v1/services/s/instances/i/report",
                             R"({"k":")" + std::string(4000, 'x') + R"("})");
  EXPECT_EQ(response.status, 413);
  EXPECT_EQ(response.body, "request body too large");

  // Chunked bodies are held to the same limit, and a body right at the limit passes.
  RawConnection raw(server_->address());
  ASSERT_TRUE(
      raw.send("PUT /v1/services/s/instances/i/report HTTP/1.1\r\nHost: x\r\n"
               "Transfer-Encoding: chunked\r\n\r\n800\r\n" +
               std::string(0x800, ' ') + "\r\n0\r\n\r\n"));
  const auto chunked = raw.read_response();
  ASSERT_TRUE(chunked);
  EXPECT_EQ(chunked->status, 413u);

  const std::string exact = R"({"k":")" + std::string(1024 - 8, 'x') + R"("})";
  ASSERT_EQ(exact.size(), 1024u);
  EXPECT_EQ(send("PUT", "/v1/services/s/instances/i/report", exact).status, 200);
  EXPECT_EQ(backend_.calls().size(), 1u);
}

TEST_F(ApiServerTest, ExpectContinueGets100OrAnEarly413) {
  start({}, 5s, 1024);
  RawConnection raw(server_->address());
  const std::string body = R"({"k":"v"})";
  ASSERT_TRUE(
      raw.send("PUT /v1/services/s/instances/i/report HTTP/1.1\r\nHost: x\r\n"
               "x-openedge-username: agent\r\nx-openedge-password: token-1\r\n"
               "Expect: 100-continue\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n"));
  auto response = raw.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 100u);
  ASSERT_TRUE(raw.send(body));
  response = raw.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200u);
  EXPECT_EQ(backend_.last_call().report, json({{"k", "v"}}));

  // Too large: refused from the headers, before the client sends the body.
  RawConnection big(server_->address());
  ASSERT_TRUE(
      big.send("PUT /v1/services/s/instances/i/report HTTP/1.1\r\nHost: x\r\n"
               "Expect: 100-continue\r\nContent-Length: 5000\r\n\r\n"));
  response = big.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 413u);
  EXPECT_EQ(backend_.calls().size(), 1u);
}

// --- backend errors ---

TEST_F(ApiServerTest, BackendExceptionBecomes400WithItsText) {
  start();
  backend_.fail_with("service (nope) not found");
  const auto response = send("PUT", "/v1/services/nope/instances/x/stop");
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(response.body, "service (nope) not found");

  try {
    client().inspect_system();
    FAIL() << "no error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.body(), "service (nope) not found");
  }

  // The server lives on.
  backend_.fail_with("");
  EXPECT_EQ(client().available_port(), "50123");
}

TEST_F(ApiServerTest, InstanceRoutesNameTheCallerAndForbiddenBecomes403) {
  start();
  ASSERT_EQ(send("PUT", "/v1/services/fn/instances/fn.1/start", "{}").status, 200);
  EXPECT_EQ(backend_.last_call().caller, kUser);
  ASSERT_EQ(send("PUT", "/v1/services/fn/instances/fn.1/report", R"({"a":1})").status, 200);
  EXPECT_EQ(backend_.last_call().caller, kUser);

  backend_.fail_with("service 'hub' runs static instances", true);
  const auto response = send("PUT", "/v1/services/hub/instances/hub/stop");
  EXPECT_EQ(response.status, 403);
  EXPECT_EQ(response.body, "service 'hub' runs static instances");
  EXPECT_EQ(backend_.last_call().caller, kUser);
}

// --- the socket file ---

TEST_F(ApiServerTest, SocketFileHasMode0660) {
  start();
  struct stat st {};
  ASSERT_EQ(::stat(socket_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
}

TEST_F(ApiServerTest, StaleSocketFileIsReplaced) {
  fs::create_directories(fs::path(socket_path()).parent_path());
  {
    // A socket file nobody listens on any more, as a killed master leaves it.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path().c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(fd);
  }
  ASSERT_TRUE(fs::is_socket(socket_path()));
  start();
  EXPECT_EQ(client().available_port(), "50123");
}

TEST_F(ApiServerTest, LiveSocketIsRefused) {
  start();
  ApiServerOptions options;
  options.address = "unix://" + socket_path();
  ApiServer second(options, backend_, logger_);
  try {
    second.start();
    FAIL() << "second server started";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(socket_path()), std::string::npos) << e.what();
  }
  // The first one still owns and serves the socket.
  EXPECT_EQ(client().available_port(), "50123");
  second.stop();
  EXPECT_TRUE(fs::exists(socket_path()));
}

TEST_F(ApiServerTest, NonSocketFileIsNotReplaced) {
  dir_.write("run/baetyl.sock", "precious");
  EXPECT_THROW(start(), std::runtime_error);
  EXPECT_TRUE(fs::is_regular_file(socket_path()));
}

TEST_F(ApiServerTest, SocketFileIsRemovedOnStopAndServerRestarts) {
  start();
  ASSERT_TRUE(fs::exists(socket_path()));
  server_->stop();
  EXPECT_FALSE(fs::exists(socket_path()));
  server_->stop();  // idempotent

  server_->start();
  EXPECT_EQ(client().available_port(), "50123");
  server_.reset();  // the destructor stops too
  EXPECT_FALSE(fs::exists(socket_path()));
}

TEST_F(ApiServerTest, BadAddressesAreErrorsNamingTheAddress) {
  const std::string too_long =
      "unix://" + (dir_.path() / std::string(150, 'x') / "a.sock").string();
  for (const std::string& address :
       std::vector<std::string>{"", "baetyl.sock", "http://127.0.0.1:80", "tcp://127.0.0.1",
                                "tcp://127.0.0.1:99999", "tcp://:80", "unix://", too_long}) {
    SCOPED_TRACE(address);
    ApiServerOptions options;
    options.address = address;
    ApiServer server(options, backend_, logger_);
    try {
      server.start();
      FAIL() << "started";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(address), std::string::npos) << e.what();
    }
  }
}

TEST_F(ApiServerTest, TcpPortInUseIsAnError) {
  start("tcp://127.0.0.1:0");
  ApiServerOptions options;
  options.address = server_->address();
  ApiServer second(options, backend_, logger_);
  EXPECT_THROW(second.start(), std::runtime_error);
}

// --- connections ---

TEST_F(ApiServerTest, SlowHandlerDoesNotBlockOtherRequests) {
  start();
  backend_.hold_stop(true);
  auto slow = std::async(std::launch::async, [this] { client().stop_instance("fn", "fn.1"); });
  auto slow2 = std::async(std::launch::async, [this] { client().stop_instance("fn", "fn.2"); });
  ASSERT_TRUE(backend_.wait_for_stops_waiting(2));

  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(client().inspect_system().software.mode, "native");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  EXPECT_EQ(slow.wait_for(0s), std::future_status::timeout);

  backend_.hold_stop(false);
  EXPECT_NO_THROW(slow.get());
  EXPECT_NO_THROW(slow2.get());
}

TEST_F(ApiServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  for (const std::string& address : {std::string(), std::string("tcp://127.0.0.1:0")}) {
    start(address);
    RawConnection raw(server_->address());
    ASSERT_TRUE(raw.connected());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(raw.send(raw_request("GET", "/v1/ports/available")));
      const auto response = raw.read_response();
      ASSERT_TRUE(response) << "request " << i;
      EXPECT_EQ(response->status, 200u);
      EXPECT_EQ(response->body, R"({"port":"50123"})");
    }
    // Pipelined: both answered, in order.
    ASSERT_TRUE(raw.send(raw_request("PUT", "/v1/services/a/instances/b/report", R"({"n":1})") +
                         raw_request("GET", "/v1/nowhere")));
    auto first = raw.read_response();
    auto second = raw.read_response();
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->status, 200u);
    EXPECT_EQ(second->status, 404u);
    // An error answer keeps the connection too.
    ASSERT_TRUE(raw.send(raw_request("GET", "/v1/system/inspect")));
    first = raw.read_response();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->status, 200u);
    server_->stop();
  }
}

TEST_F(ApiServerTest, ConnectionCloseAndHttp10EndTheConnection) {
  start();
  {
    RawConnection raw(server_->address());
    ASSERT_TRUE(raw.send(raw_request("GET", "/v1/ports/available", {}, "Connection: close\r\n")));
    const auto response = raw.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200u);
    EXPECT_TRUE(raw.closed_within(2s));
  }
  {
    RawConnection raw(server_->address());
    ASSERT_TRUE(
        raw.send("GET /v1/ports/available HTTP/1.0\r\nx-openedge-username: agent\r\n"
                 "x-openedge-password: token-1\r\n\r\n"));
    const auto response = raw.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200u);
    EXPECT_TRUE(raw.closed_within(2s));
  }
}

TEST_F(ApiServerTest, MalformedRequestGets400AndClose) {
  start();
  RawConnection raw(server_->address());
  ASSERT_TRUE(raw.send("THIS IS NOT HTTP\r\n\r\n"));
  const auto response = raw.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400u);
  EXPECT_TRUE(raw.closed_within(3s));
}

TEST_F(ApiServerTest, TimeoutClosesAHalfSentRequestAndAnIdleConnection) {
  start({}, 300ms);
  RawConnection half(server_->address());
  ASSERT_TRUE(
      half.send("PUT /v1/system/update HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"));
  RawConnection idle(server_->address());
  ASSERT_TRUE(idle.send(raw_request("GET", "/v1/ports/available")));
  ASSERT_TRUE(idle.read_response());

  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(half.closed_within(3s));
  EXPECT_TRUE(idle.closed_within(3s));
  EXPECT_GT(std::chrono::steady_clock::now() - started, 150ms);
  EXPECT_EQ(backend_.calls().size(), 1u);

  // The server is fine afterwards.
  EXPECT_EQ(client().available_port(), "50123");
}

TEST_F(ApiServerTest, TimeoutDoesNotCutAHandlerThatRunsLonger) {
  start({}, 300ms);
  backend_.hold_stop(true);
  RawConnection raw(server_->address());
  ASSERT_TRUE(raw.send(raw_request("PUT", "/v1/services/fn/instances/fn.1/stop")));
  ASSERT_TRUE(backend_.wait_for_stops_waiting(1));
  std::this_thread::sleep_for(700ms);
  backend_.hold_stop(false);
  const auto response = raw.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200u);
}

TEST_F(ApiServerTest, StopClosesOpenConnections) {
  start();
  RawConnection raw(server_->address());
  ASSERT_TRUE(raw.send(raw_request("GET", "/v1/ports/available")));
  ASSERT_TRUE(raw.read_response());
  server_->stop();
  EXPECT_TRUE(raw.closed_within(2s));
}

TEST_F(ApiServerTest, StopWaitsForABackendCallInFlight) {
  start();
  backend_.hold_stop(true);
  auto slow = std::async(std::launch::async, [this] {
    try {
      client().stop_instance("fn", "fn.1");
    } catch (const std::exception&) {
      // The connection is closed under it: the answer never comes.
    }
  });
  ASSERT_TRUE(backend_.wait_for_stops_waiting(1));
  auto stopping = std::async(std::launch::async, [this] { server_->stop(); });
  EXPECT_EQ(stopping.wait_for(200ms), std::future_status::timeout);
  backend_.hold_stop(false);
  EXPECT_EQ(stopping.wait_for(5s), std::future_status::ready);
  slow.get();
}

TEST_F(ApiServerTest, ManyConcurrentClients) {
  start("tcp://127.0.0.1:0");
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto c = client();
      const std::string instance = "i." + std::to_string(t);
      for (int i = 0; i < 25; ++i) {
        c.report_instance("s", instance, {{"n", i}});
        ++ok;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(backend_.calls().size(), 200u);
}

}  // namespace
