// The HTTP client against the real HTTP/1.1 test server of support/http_test_server.h, over a Unix
// socket and over TCP.
#include <chrono>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "baetyl/http/client.h"
#include "support/http_test_server.h"

namespace {

using baetyl::testing::closed_port;
using baetyl::testing::RecordedRequest;
using TestServer = baetyl::testing::HttpTestServer;
using baetyl::http::Client;
using baetyl::http::ClientOptions;
using baetyl::http::HttpError;
using baetyl::http::Request;
using baetyl::http::Response;
using namespace std::chrono_literals;
using namespace std::string_literals;

enum class Transport { unix_socket, tcp };

class HttpClientTest : public ::testing::TestWithParam<Transport> {
 protected:
  std::string address() const {
    return GetParam() == Transport::unix_socket ? server_.unix_address() : server_.tcp_address();
  }
  Client client(std::chrono::milliseconds timeout = 5s) const {
    return Client(ClientOptions{.address = address(), .timeout = timeout});
  }

  TestServer server_;
};

INSTANTIATE_TEST_SUITE_P(Transports, HttpClientTest,
                         ::testing::Values(Transport::unix_socket, Transport::tcp),
                         [](const auto& info) {
                           return info.param == Transport::unix_socket ? "Unix" : "Tcp";
                         });

TEST_P(HttpClientTest, GetReturnsStatusHeadersAndBody) {
  server_.respond(200, R"({"port":"12345"})",
                  {{"Content-Type", "application/json"}, {"X-Multi", "a"}, {"X-Multi", "b"}});

  const Response response = client().get("/v1/ports/available", {{"X-Custom", "hello world"}});

  EXPECT_EQ(response.status, 200);
  EXPECT_TRUE(response.ok());
  EXPECT_EQ(response.body, R"({"port":"12345"})");
  EXPECT_EQ(response.headers.at("content-type"), "application/json");
  EXPECT_EQ(response.headers.at("content-length"), "16");
  EXPECT_EQ(response.headers.at("x-multi"), "a, b");

  ASSERT_EQ(server_.request_count(), 1u);
  const RecordedRequest request = server_.last_request();
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.target, "/v1/ports/available");
  EXPECT_EQ(request.header("x-custom"), "hello world");
  EXPECT_TRUE(request.has("host"));
  EXPECT_TRUE(request.body.empty());
  EXPECT_FALSE(request.has("content-type"));
  EXPECT_FALSE(request.has("expect"));
}

TEST_P(HttpClientTest, PutSendsBodyAndHeadersIntact) {
  server_.respond(200, "done");
  const std::string body = "{\"a\":\"\\u00e9\xc3\xa9\",\"b\":[1,2,3]}\r\n\0tail"s;

  const Response response = client().put(
      "/v1/services/a/instances/b/report", body,
      {{"Content-Type", "application/json"}, {"x-openedge-username", "svc"}, {"X-Empty", ""}});

  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "done");
  const RecordedRequest request = server_.last_request();
  EXPECT_EQ(request.method, "PUT");
  EXPECT_EQ(request.target, "/v1/services/a/instances/b/report");
  EXPECT_EQ(request.body, body);
  EXPECT_EQ(request.header("content-length"), std::to_string(body.size()));
  EXPECT_EQ(request.header("content-type"), "application/json");
  EXPECT_EQ(request.header("x-openedge-username"), "svc");
  EXPECT_TRUE(request.has("x-empty"));
  EXPECT_EQ(request.header("x-empty"), "");
}

TEST_P(HttpClientTest, EmptyPutSendsContentLengthZero) {
  server_.respond(200);
  const Response response = client().put("/v1/services/a/instances/b/stop", "");
  EXPECT_EQ(response.status, 200);
  EXPECT_TRUE(response.body.empty());
  const RecordedRequest request = server_.last_request();
  EXPECT_EQ(request.method, "PUT");
  EXPECT_EQ(request.header("content-length"), "0");
  EXPECT_TRUE(request.body.empty());
}

TEST_P(HttpClientTest, OtherMethodsAndQueriesGoThroughSend) {
  server_.respond(201, "created");
  Response response = client().send(Request{"POST", "/items?a=1&b=two", {}, "x=1"});
  EXPECT_EQ(response.status, 201);
  EXPECT_EQ(server_.last_request().method, "POST");
  EXPECT_EQ(server_.last_request().target, "/items?a=1&b=two");
  EXPECT_EQ(server_.last_request().body, "x=1");
  EXPECT_FALSE(server_.last_request().has("content-type"));

  server_.respond(204);
  response = client().send(Request{"DELETE", "items/3", {}, {}});  // a missing '/' is added
  EXPECT_EQ(response.status, 204);
  EXPECT_EQ(server_.last_request().method, "DELETE");
  EXPECT_EQ(server_.last_request().target, "/items/3");
}

TEST_P(HttpClientTest, LargeBodiesTravelBothWays) {
  std::string upload(1024 * 1024, '\0');
  for (std::size_t i = 0; i < upload.size(); ++i) upload[i] = static_cast<char>((i * 7 + 3) % 256);
  std::string download(1024 * 1024 + 17, '\0');
  for (std::size_t i = 0; i < download.size(); ++i) {
    download[i] = static_cast<char>((i * 13 + 5) % 256);
  }
  server_.respond(200, download);

  const Response response = client().put("/upload", upload);

  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body.size(), download.size());
  EXPECT_TRUE(response.body == download);
  const RecordedRequest request = server_.last_request();
  EXPECT_EQ(request.body.size(), upload.size());
  EXPECT_TRUE(request.body == upload);
  EXPECT_FALSE(request.has("expect"));
}

TEST_P(HttpClientTest, StatusCodesPropagateWithoutThrowing) {
  for (const unsigned status : {201u, 204u, 400u, 401u, 404u, 500u, 503u}) {
    server_.respond(status, status == 204 ? "" : "status " + std::to_string(status));
    const Response response = client().get("/status");
    EXPECT_EQ(response.status, static_cast<long>(status));
    EXPECT_EQ(response.ok(), status < 300);
    EXPECT_EQ(response.body, status == 204 ? "" : "status " + std::to_string(status));
  }
}

TEST_P(HttpClientTest, ConcurrentSendsShareOneClient) {
  server_.respond(200, "pong");
  const Client shared = client();
  constexpr int kThreads = 8;
  constexpr int kRequests = 25;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRequests; ++i) {
        const std::string body = std::to_string(t) + ":" + std::to_string(i);
        try {
          const Response response = shared.put("/ping/" + std::to_string(t), body);
          if (response.status != 200 || response.body != "pong") ++failures[t];
        } catch (const std::exception&) {
          ++failures[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();

  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), static_cast<std::size_t>(kThreads * kRequests));
  for (const auto& request : requests) {
    EXPECT_EQ(request.target, "/ping/" + request.body.substr(0, request.body.find(':')));
  }
}

TEST_P(HttpClientTest, SilentServerTimesOutInTheConfiguredTime) {
  server_.go_silent();
  const Client impatient = client(300ms);

  const auto start = std::chrono::steady_clock::now();
  try {
    impatient.get("/v1/system/inspect");
    FAIL() << "expected a timeout";
  } catch (const HttpError& e) {
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_TRUE(e.timed_out());
    EXPECT_NE(std::string(e.what()).find("GET " + address() + "/v1/system/inspect: "),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("Timeout was reached"), std::string::npos) << e.what();
    EXPECT_GE(elapsed, 280ms);
    EXPECT_LT(elapsed, 1500ms);
  }
  EXPECT_EQ(server_.request_count(), 1u);  // the request did arrive
}

TEST(HttpClient, ConnectionRefusedNamesTheAddress) {
  const std::string address = "tcp://127.0.0.1:" + std::to_string(closed_port());
  const Client client(ClientOptions{.address = address});
  try {
    client.get("/v1/system/inspect");
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_FALSE(e.timed_out());
    EXPECT_EQ(std::string(e.what()).rfind(
                  "GET " + address + "/v1/system/inspect: Couldn't connect to server", 0),
              0u)
        << e.what();
  }
}

TEST(HttpClient, MissingSocketPathNamesTheAddress) {
  const std::string address = "unix:///tmp/baetyl-no-such-dir/x.sock";
  const Client client(ClientOptions{.address = address});
  try {
    client.put("/v1/services/a/instances/b/stop", "");
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_FALSE(e.timed_out());
    EXPECT_EQ(
        std::string(e.what()).rfind(
            "PUT " + address + "/v1/services/a/instances/b/stop: Couldn't connect to server", 0),
        0u)
        << e.what();
  }
}

TEST(HttpClient, InvalidAddressesAreRejectedAtConstruction) {
  for (const std::string address :
       {"", "127.0.0.1:50050", "/var/run/baetyl.sock", "ftp://127.0.0.1:21", "unix://",
        "tcp://127.0.0.1", "tcp://127.0.0.1:", "tcp://:50050", "tcp://127.0.0.1:port",
        "tcp://127.0.0.1:0", "tcp://127.0.0.1:70000", "tcp://127.0.0.1:50050/path", "tcp://::1:80",
        "tcp://[::1", "http://", "https://user@example.com", "http://exa mple.com:80"}) {
    try {
      Client client(ClientOptions{.address = address});
      ADD_FAILURE() << "accepted '" << address << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("'" + address + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(HttpClient, ValidAddressForms) {
  for (const std::string address :
       {"unix:///var/run/baetyl.sock", "unix://var/run/baetyl.sock", "tcp://127.0.0.1:50050",
        "tcp://localhost:50050/", "tcp://[::1]:50050", "http://example.com",
        "http://example.com:8080", "https://example.com", "https://example.com:8443/api/",
        "HTTPS://example.com"}) {
    EXPECT_NO_THROW(Client(ClientOptions{.address = address})) << address;
  }
}

TEST(HttpClient, InvalidRequestsAreRejectedBeforeSending) {
  TestServer server;
  const Client client(ClientOptions{.address = server.tcp_address()});
  EXPECT_THROW(client.get("/x", {{"X-Bad", "a\r\nInjected: yes"}}), std::invalid_argument);
  EXPECT_THROW(client.get("/x", {{"Bad Name", "a"}}), std::invalid_argument);
  EXPECT_THROW(client.get("/x", {{"X-Nul", "a\0b"s}}), std::invalid_argument);
  EXPECT_THROW(client.get("/x y"), std::invalid_argument);
  EXPECT_THROW(client.send(Request{"GE T", "/x", {}, {}}), std::invalid_argument);
  EXPECT_EQ(server.request_count(), 0u);
}

TEST(HttpClient, HttpAddressPrefixIsPrependedToPaths) {
  TestServer server;
  server.respond(200, "ok");
  const Client client(
      ClientOptions{.address = "http://127.0.0.1:" + std::to_string(server.tcp_port()) + "/api/"});
  EXPECT_EQ(client.get("/v1/system/inspect").body, "ok");
  EXPECT_EQ(server.last_request().target, "/api/v1/system/inspect");
  EXPECT_EQ(server.last_request().header("host"), "127.0.0.1:" + std::to_string(server.tcp_port()));
}

TEST(HttpClient, UnixSocketRequestsCarryALocalHostHeader) {
  TestServer server;
  server.respond(200);
  const Client client(ClientOptions{.address = server.unix_address()});
  client.get("/");
  EXPECT_EQ(server.last_request().header("host"), "localhost");
}

TEST(HttpClient, HttpsAgainstAPlainServerFailsWithATlsError) {
  TestServer server;
  server.respond(200, "plain");
  const std::string address = "https://127.0.0.1:" + std::to_string(server.tcp_port());
  const Client client(ClientOptions{.address = address, .timeout = 5s});
  try {
    client.get("/v1/x");
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_FALSE(e.timed_out());
    EXPECT_EQ(std::string(e.what()).rfind("GET " + address + "/v1/x: ", 0), 0u) << e.what();
  }
}

}  // namespace
