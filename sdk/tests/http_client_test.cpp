// The HTTP client against the real HTTP/1.1 test server of support/http_test_server.h, over a Unix
// socket and over TCP; then HTTPS (one- and two-way) and proxies.
#include <stdlib.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/http/client.h"
#include "baetyl/testing/temp_dir.h"
#include "baetyl/testing/tls.h"
#include "support/http_test_server.h"

namespace {

using baetyl::testing::closed_port;
using baetyl::testing::RecordedRequest;
using baetyl::testing::TlsFiles;
using TestProxy = baetyl::testing::HttpTestProxy;
using TestServer = baetyl::testing::HttpTestServer;
using baetyl::http::Client;
using baetyl::http::ClientOptions;
using baetyl::http::HttpError;
using baetyl::http::Request;
using baetyl::http::Response;
using namespace std::chrono_literals;
using namespace std::string_literals;

enum class Transport { unix_socket, tcp };

// Sets environment variables for one test and puts the previous values back afterwards.
class ScopedEnv {
 public:
  ScopedEnv() = default;
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

  ScopedEnv& set(const std::string& name, const std::string& value) {
    remember(name);
    ::setenv(name.c_str(), value.c_str(), 1);
    return *this;
  }
  ScopedEnv& unset(const std::string& name) {
    remember(name);
    ::unsetenv(name.c_str());
    return *this;
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        ::unsetenv(it->first.c_str());
      }
    }
  }

 private:
  void remember(const std::string& name) {
    const char* value = ::getenv(name.c_str());
    saved_.emplace_back(name, value == nullptr ? std::nullopt : std::optional<std::string>(value));
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// No proxy variable of the machine running the tests leaks into them.
void clear_proxies(ScopedEnv& env) {
  for (const char* name : {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                           "ALL_PROXY", "no_proxy", "NO_PROXY"}) {
    env.unset(name);
  }
}

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

TEST_P(HttpClientTest, PostSendsTheBody) {
  server_.respond(201, "made");
  const Response response =
      client().post("/v1/edge/info", R"({"a":1})", {{"Content-Type", "application/json"}});
  EXPECT_EQ(response.status, 201);
  EXPECT_EQ(response.body, "made");
  EXPECT_EQ(server_.last_request().method, "POST");
  EXPECT_EQ(server_.last_request().body, R"({"a":1})");
  EXPECT_EQ(server_.last_request().header("content-type"), "application/json");
}

TEST_P(HttpClientTest, DownloadWritesTheBodyToAFile) {
  baetyl::testing::TempDir dir;
  std::string content(300 * 1024 + 5, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 31 % 251);
  server_.respond(200, content, {{"X-Kind", "zip"}});
  const std::string file = (dir.path() / "v.zip").string();

  const Response response = client().download("/volumes/v.zip", file, content.size());

  EXPECT_EQ(response.status, 200);
  EXPECT_TRUE(response.body.empty());
  EXPECT_EQ(response.headers.at("x-kind"), "zip");
  EXPECT_EQ(server_.last_request().method, "GET");
  EXPECT_EQ(server_.last_request().target, "/volumes/v.zip");
  std::ifstream in(file, std::ios::binary);
  const std::string written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(written == content) << written.size() << " bytes written";

  // An error page goes to the file too; the status says what it is.
  server_.respond(404, "no such volume");
  EXPECT_EQ(client().download("/volumes/w.zip", file, 1024).status, 404);
}

TEST_P(HttpClientTest, DownloadStopsAtTheSizeLimit) {
  baetyl::testing::TempDir dir;
  const std::string file = (dir.path() / "big.zip").string();
  for (const bool chunked : {false, true}) {
    if (chunked) {
      server_.respond_chunked(200, {std::string(600, 'a'), std::string(600, 'b')});
    } else {
      server_.respond(200, std::string(1025, 'x'));
    }
    try {
      client().download("/big.zip", file, 1024);
      ADD_FAILURE() << "expected HttpError (chunked: " << chunked << ")";
    } catch (const HttpError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr("Maximum file size exceeded"));
      EXPECT_THAT(e.what(), ::testing::HasSubstr("larger than 1024 bytes"));
    }
    EXPECT_LE(std::filesystem::file_size(file), 1024u);
  }
}

TEST_P(HttpClientTest, DownloadIntoAMissingDirectoryFails) {
  server_.respond(200, "zip");
  try {
    client().download("/v.zip", "/nonexistent-dir-for-baetyl-tests/v.zip", 1024);
    ADD_FAILURE() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("/nonexistent-dir-for-baetyl-tests/v.zip"));
  }
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

TEST_P(HttpClientTest, ChunkedResponseIsReassembled) {
  server_.respond_chunked(200, {"first,", "second,", std::string(70000, 'x'), "last"});
  const Response response = client().get("/chunked");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "first,second," + std::string(70000, 'x') + "last");
  EXPECT_EQ(response.headers.at("transfer-encoding"), "chunked");
}

TEST_P(HttpClientTest, UnixAndTcpAddressesNeverUseAProxy) {
  ScopedEnv env;
  clear_proxies(env);
  const std::string unreachable = "http://127.0.0.1:" + std::to_string(closed_port());
  env.set("http_proxy", unreachable).set("HTTP_PROXY", unreachable).set("all_proxy", unreachable);
  server_.respond(200, "direct");
  EXPECT_EQ(client().get("/x").body, "direct");
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

namespace {

// HTTPS against the test server's TLS port, with a PKI made for the test.
class HttpsClientTest : public ::testing::Test {
 protected:
  HttpsClientTest() : pki_(baetyl::testing::make_test_pki(dir_.path() / "pki")) {
    clear_proxies(env_);
  }

  TlsFiles server_files(std::string client_ca = {}) const {
    return TlsFiles{.cert = pki_.server_cert.string(),
                    .key = pki_.server_key.string(),
                    .client_ca = std::move(client_ca)};
  }
  static std::string https_address(const std::string& host, std::uint16_t port) {
    return "https://" + host + ":" + std::to_string(port);
  }
  ClientOptions trusting(const std::string& address) const {
    return ClientOptions{.address = address, .timeout = 5s, .ca = pki_.ca.string()};
  }
  static std::string failure_of(const Client& client, const std::string& path) {
    try {
      client.get(path);
    } catch (const HttpError& e) {
      EXPECT_FALSE(e.timed_out()) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "expected HttpError";
    return {};
  }

  ScopedEnv env_;
  baetyl::testing::TempDir dir_;
  baetyl::testing::TestPki pki_;
};

TEST_F(HttpsClientTest, TrustedCaVerifiesTheServerByAddressAndName) {
  TestServer server(server_files());
  server.respond(200, "secure");

  const Client by_address(trusting(https_address("127.0.0.1", server.tls_port()) + "/api"));
  EXPECT_EQ(by_address.get("/v1/x").body, "secure");
  EXPECT_EQ(server.last_request().target, "/api/v1/x");
  EXPECT_EQ(server.last_request().server_name, "");  // no SNI for an address

  const Client by_name(trusting(https_address("localhost", server.tls_port())));
  EXPECT_EQ(by_name.get("/v1/y").body, "secure");
  EXPECT_EQ(server.last_request().server_name, "localhost");
  EXPECT_EQ(server.last_request().header("host"),
            "localhost:" + std::to_string(server.tls_port()));
}

TEST_F(HttpsClientTest, ChunkedResponseOverTls) {
  TestServer server(server_files());
  server.respond_chunked(200, {"a", "bc", std::string(20000, 'd')});
  const Client client(trusting(https_address("127.0.0.1", server.tls_port())));
  EXPECT_EQ(client.get("/").body, "abc" + std::string(20000, 'd'));
}

TEST_F(HttpsClientTest, DownloadOverTls) {
  TestServer server(server_files());
  server.respond_chunked(200, {"PK", std::string(50000, 'z')});
  const Client client(trusting(https_address("127.0.0.1", server.tls_port())));
  const std::string file = (dir_.path() / "v.zip").string();
  EXPECT_EQ(client.download("/v.zip", file, 1 << 20).status, 200);
  EXPECT_EQ(std::filesystem::file_size(file), 50002u);
}

TEST_F(HttpsClientTest, UnknownCaFailsVerification) {
  TestServer server(server_files());
  server.respond(200, "secure");
  ClientOptions options = trusting(https_address("127.0.0.1", server.tls_port()));
  options.ca = pki_.other_ca.string();
  const std::string message = failure_of(Client(options), "/v1/x");
  EXPECT_NE(message.find("SSL peer certificate or SSH remote key was not OK"), std::string::npos)
      << message;
  EXPECT_EQ(server.request_count(), 0u);
}

TEST_F(HttpsClientTest, HostNameMustMatchTheCertificate) {
  TlsFiles files = server_files();
  files.listen_address = "127.0.0.2";  // loopback, but not in the certificate
  TestServer server(files);
  server.respond(200, "secure");
  const std::string message =
      failure_of(Client(trusting(https_address("127.0.0.2", server.tls_port()))), "/");
  EXPECT_NE(message.find("SSL peer certificate or SSH remote key was not OK"), std::string::npos)
      << message;
  EXPECT_EQ(server.request_count(), 0u);
}

TEST_F(HttpsClientTest, InsecureSkipVerifyAcceptsAnyCertificate) {
  TlsFiles files = server_files();
  files.listen_address = "127.0.0.2";
  TestServer server(files);
  server.respond(200, "unchecked");
  ClientOptions options{.address = https_address("127.0.0.2", server.tls_port()),
                        .ca = pki_.other_ca.string(),
                        .insecure_skip_verify = true};
  EXPECT_EQ(Client(options).get("/").body, "unchecked");
}

TEST_F(HttpsClientTest, ClientCertificateForTwoWayTls) {
  TestServer server(server_files(pki_.ca.string()));
  server.respond(200, "mutual");
  ClientOptions options = trusting(https_address("127.0.0.1", server.tls_port()));
  options.cert = pki_.client_cert.string();
  options.key = pki_.client_key.string();
  EXPECT_EQ(Client(options).get("/v1/x").body, "mutual");
  EXPECT_EQ(server.request_count(), 1u);
}

TEST_F(HttpsClientTest, TwoWayTlsWithoutAClientCertificateFails) {
  TestServer server(server_files(pki_.ca.string()));
  server.respond(200, "mutual");
  const Client client(trusting(https_address("127.0.0.1", server.tls_port())));
  failure_of(client, "/v1/x");
  EXPECT_EQ(server.request_count(), 0u);
}

TEST_F(HttpsClientTest, MissingCaFileIsReported) {
  ClientOptions options = trusting("https://127.0.0.1:" + std::to_string(closed_port()));
  options.ca = (dir_.path() / "missing.pem").string();
  const std::string message = failure_of(Client(options), "/");
  EXPECT_NE(message.find("Problem with the SSL CA cert"), std::string::npos) << message;
}

TEST_F(HttpsClientTest, HandshakeThatNeverCompletesTimesOut) {
  // Connections complete in the listen backlog, but nothing ever answers the ClientHello.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor mute(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
  const Client client(ClientOptions{.address = https_address("127.0.0.1", mute.local_endpoint().port()),
                                    .timeout = 300ms,
                                    .ca = pki_.ca.string()});
  const auto start = std::chrono::steady_clock::now();
  try {
    client.get("/");
    FAIL() << "expected a timeout";
  } catch (const HttpError& e) {
    EXPECT_TRUE(e.timed_out()) << e.what();
    EXPECT_NE(std::string(e.what()).find("Timeout was reached"), std::string::npos) << e.what();
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 280ms);
  EXPECT_LT(elapsed, 1500ms);
}

TEST_F(HttpsClientTest, HttpsGoesThroughAConnectTunnel) {
  TestServer server(server_files());
  server.respond(200, "tunnelled");
  TestProxy proxy;
  env_.set("https_proxy", proxy.url());

  const Client client(trusting(https_address("127.0.0.1", server.tls_port())));
  EXPECT_EQ(client.get("/v1/x").body, "tunnelled");

  const auto asked = proxy.requests();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].method, "CONNECT");
  EXPECT_EQ(asked[0].target, "127.0.0.1:" + std::to_string(server.tls_port()));
  EXPECT_EQ(server.last_request().target, "/v1/x");
}

TEST_F(HttpsClientTest, UpperCaseHttpsProxyAndNoProxyAreHonoured) {
  TestServer server(server_files());
  server.respond(200, "ok");
  TestProxy proxy;
  env_.set("HTTPS_PROXY", proxy.url());
  const Client client(trusting(https_address("127.0.0.1", server.tls_port())));
  EXPECT_EQ(client.get("/").body, "ok");
  EXPECT_EQ(proxy.requests().size(), 1u);

  env_.set("NO_PROXY", "127.0.0.1");
  EXPECT_EQ(client.get("/").body, "ok");
  EXPECT_EQ(proxy.requests().size(), 1u);
  EXPECT_EQ(server.request_count(), 2u);
}

class HttpProxyTest : public ::testing::Test {
 protected:
  HttpProxyTest() { clear_proxies(env_); }

  std::string http_address(const std::string& prefix = {}) const {
    return "http://127.0.0.1:" + std::to_string(server_.tcp_port()) + prefix;
  }

  ScopedEnv env_;
  TestServer server_;
  TestProxy proxy_;
};

TEST_F(HttpProxyTest, PlainRequestsGoToTheProxyInAbsoluteForm) {
  env_.set("http_proxy", proxy_.url());
  server_.respond(200, "proxied");

  const Client client(ClientOptions{.address = http_address("/api")});
  const Response response = client.put("/v1/x?a=1", "body");

  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "proxied");
  const auto asked = proxy_.requests();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].method, "PUT");
  EXPECT_EQ(asked[0].target, http_address("/api/v1/x?a=1"));
  EXPECT_EQ(asked[0].header("host"), "127.0.0.1:" + std::to_string(server_.tcp_port()));
  EXPECT_FALSE(asked[0].has("proxy-authorization"));
  EXPECT_EQ(server_.last_request().target, "/api/v1/x?a=1");
  EXPECT_EQ(server_.last_request().body, "body");
}

TEST_F(HttpProxyTest, ProxyCredentialsAreSentAsBasicAuthorization) {
  env_.set("http_proxy", "http://user:p%40ss@127.0.0.1:" + std::to_string(proxy_.port()));
  server_.respond(200);
  Client(ClientOptions{.address = http_address()}).get("/");
  const auto asked = proxy_.requests();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].header("proxy-authorization"), "Basic dXNlcjpwQHNz");  // user:p@ss
}

TEST_F(HttpProxyTest, AllProxyIsTheFallback) {
  env_.set("all_proxy", proxy_.url());
  server_.respond(200);
  Client(ClientOptions{.address = http_address()}).get("/");
  EXPECT_EQ(proxy_.requests().size(), 1u);
}

TEST_F(HttpProxyTest, UpperCaseHttpProxyIsIgnoredAsByCurl) {
  env_.set("HTTP_PROXY", "http://127.0.0.1:" + std::to_string(closed_port()));
  server_.respond(200, "direct");
  EXPECT_EQ(Client(ClientOptions{.address = http_address()}).get("/").body, "direct");
}

TEST_F(HttpProxyTest, NoProxyEntriesBypassTheProxy) {
  env_.set("http_proxy", proxy_.url());
  server_.respond(200, "direct");
  for (const std::string no_proxy :
       {"*", "127.0.0.1", "example.com, 127.0.0.1", "example.com 127.0.0.0/8", "10.0.0.0/8,127.0.0.1/32"}) {
    env_.set("no_proxy", no_proxy);
    EXPECT_EQ(Client(ClientOptions{.address = http_address()}).get("/").body, "direct") << no_proxy;
  }
  EXPECT_TRUE(proxy_.requests().empty());

  for (const std::string no_proxy : {"example.com", "127.0.0.2", "10.0.0.0/8", "127.0.0.10"}) {
    env_.set("no_proxy", no_proxy);
    Client(ClientOptions{.address = http_address()}).get("/");
  }
  EXPECT_EQ(proxy_.requests().size(), 4u);
}

TEST_F(HttpProxyTest, NoProxyNamesMatchWholeDomainLabels) {
  // Requests to names that cannot be resolved: with a proxy the name goes to the proxy (which
  // fails to reach it), without one the client fails to resolve it.
  env_.set("http_proxy", proxy_.url());
  const Client client(ClientOptions{.address = "http://api.example.invalid", .timeout = 5s});
  const auto outcome = [&](const std::string& no_proxy) {
    env_.set("no_proxy", no_proxy);
    try {
      client.get("/");
    } catch (const HttpError& e) {
      return std::string(e.what());
    }
    return std::string("answered");
  };
  for (const std::string bypass : {"example.invalid", ".example.invalid", "API.Example.Invalid"}) {
    EXPECT_NE(outcome(bypass).find("Couldn't resolve host name"), std::string::npos) << bypass;
  }
  const std::size_t direct_requests = proxy_.requests().size();
  EXPECT_EQ(direct_requests, 0u);
  for (const std::string via_proxy : {"ample.invalid", "other.invalid"}) {
    outcome(via_proxy);
  }
  EXPECT_EQ(proxy_.requests().size(), 2u);
}

TEST_F(HttpProxyTest, UnreachableProxyIsAConnectFailure) {
  env_.set("http_proxy", "127.0.0.1:" + std::to_string(closed_port()));  // no scheme: http
  const Client client(ClientOptions{.address = http_address()});
  try {
    client.get("/");
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_NE(std::string(e.what()).find("Couldn't connect to server"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(server_.request_count(), 0u);
}

}  // namespace
