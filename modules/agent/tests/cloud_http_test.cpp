// CloudHttp (libcurl) against the HTTPS server of test/cloud: reports and downloads, the server
// verified with the cloud's CA, client certificates, the byte limit, https only (also after a
// redirect), errors naming the URL and the status, timeouts and proxies from the environment.
#include "cloud_http.h"

#include <stdlib.h>
#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/testing/ports.h"
#include "baetyl/testing/temp_dir.h"
#include "baetyl/testing/tls.h"
#include "cloud_run.h"
#include "http_test_server.h"
#include "md5.h"

namespace baetyl::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::CloudRun;
using ::testing::HasSubstr;

constexpr const char* kProxyVariables[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                           "ALL_PROXY",  "no_proxy",    "NO_PROXY"};

// Bytes that do not compress, so a volume's zip is about as large as its content.
std::string noise(std::size_t size) {
  std::string out(size, '\0');
  std::uint32_t state = 2463534242u;
  for (auto& c : out) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    c = static_cast<char>(state);
  }
  return out;
}

// The message of the CloudHttpError `call` throws; fails the test when it throws nothing else.
template <typename Call>
std::string error_of(Call&& call, long* status = nullptr) {
  try {
    call();
  } catch (const CloudHttpError& e) {
    if (status != nullptr) *status = e.status();
    return e.what();
  }
  ADD_FAILURE() << "no CloudHttpError";
  return "";
}

class CloudHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    for (const char* name : kProxyVariables) ::unsetenv(name);
    cloud_ = new CloudRun({"dev1"});
  }
  static void TearDownTestSuite() {
    delete cloud_;
    cloud_ = nullptr;
  }
  void TearDown() override {
    for (const char* name : kProxyVariables) ::unsetenv(name);
  }

  // The device's options: the cloud's CA, its certificate and key.
  static CloudHttpOptions device() {
    return CloudHttpOptions{.timeout = 10s,
                            .ca = cloud_->pki("ca.pem").string(),
                            .cert = cloud_->pki("device-dev1.pem").string(),
                            .key = cloud_->pki("device-dev1.key").string()};
  }

  // A volume of `size` bytes of noise in the cloud; its URL and MD5.
  static std::pair<std::string, std::string> volume(const std::string& name, std::size_t size) {
    baetyl::testing::TempDir src;
    src.write("data.bin", noise(size));
    const auto packed = cloud_->pack(src.path(), name, "v1");
    return {packed.at("meta").at("url").get<std::string>(),
            packed.at("meta").at("md5").get<std::string>()};
  }

  static std::string report_url() { return cloud_->https_address() + "/v1/edge/info"; }

  static CloudRun* cloud_;
  baetyl::testing::TempDir dir_;
};

CloudRun* CloudHttpTest::cloud_ = nullptr;

TEST_F(CloudHttpTest, PostsAReportAsJson) {
  const auto answer =
      CloudHttp(device()).post_json(report_url(), R"({"time":"now","n":1})", {"x-test: 1"});
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(answer.body, "{}");
  EXPECT_EQ(cloud_->report("dev1", "https"), nlohmann::json({{"time", "now"}, {"n", 1}}));
}

TEST_F(CloudHttpTest, AnErrorStatusIsAnErrorNamingIt) {
  long status = 0;
  const std::string url = cloud_->https_address() + "/v1/elsewhere";
  EXPECT_EQ(error_of([&] { CloudHttp(device()).post_json(url, "{}"); }, &status),
            "POST " + url + " answered HTTP 404");
  EXPECT_EQ(status, 404);

  const std::string missing = cloud_->https_address() + "/volumes/missing.zip";
  const fs::path file = dir_.path() / "missing.zip";
  EXPECT_EQ(error_of([&] { CloudHttp(device()).download(missing, file, 1 << 20); }, &status),
            "GET " + missing + " answered HTTP 404");
  EXPECT_EQ(status, 404);
  EXPECT_FALSE(fs::exists(file)) << "the error page is not kept";
}

TEST_F(CloudHttpTest, DownloadsAVolumeIntoAFile) {
  const auto [url, md5] = volume("whole", 100000);
  const fs::path file = dir_.path() / "whole.zip";
  CloudHttp(device()).download(url, file, 1 << 20);
  EXPECT_EQ(file_md5_base64(file), md5);
  // The same without a Content-Length: the body ends with the connection.
  const fs::path unsized = dir_.path() / "unsized.zip";
  CloudHttp(device()).download(url + "?unsized", unsized, 1 << 20);
  EXPECT_EQ(file_md5_base64(unsized), md5);
}

TEST_F(CloudHttpTest, TheByteLimitStopsADownloadAndRemovesTheFile) {
  const auto [url, md5] = volume("large", 200000);
  const fs::path file = dir_.path() / "large.zip";
  CloudHttp(device()).download(url, file, 1 << 20);
  const auto size = fs::file_size(file);
  const std::uint64_t limit = size - 1;
  // Announced by Content-Length, and counted as the body arrives (no Content-Length).
  for (const std::string& target : {url, url + "?unsized"}) {
    SCOPED_TRACE(target);
    EXPECT_EQ(error_of([&] { CloudHttp(device()).download(target, file, limit); }),
              "GET " + target + ": Maximum file size exceeded (the body is larger than " +
                  std::to_string(limit) + " bytes)");
    EXPECT_FALSE(fs::exists(file));
  }
  CloudHttp(device()).download(url + "?unsized", file, size);  // exactly the limit is fine
  EXPECT_EQ(file_md5_base64(file), md5);
}

TEST_F(CloudHttpTest, AServerOfAnotherCaIsRefusedUnlessVerificationIsSkipped) {
  const auto pki = baetyl::testing::make_test_pki(dir_.path() / "pki");
  CloudHttpOptions options = device();
  options.ca = pki.other_ca.string();
  const std::string error =
      error_of([&] { CloudHttp(options).post_json(report_url(), R"({"n":2})"); });
  EXPECT_THAT(error, HasSubstr("POST " + report_url() + ": "));
  EXPECT_THAT(error, HasSubstr("SSL certificate problem"));

  options.insecure_skip_verify = true;
  EXPECT_EQ(CloudHttp(options).post_json(report_url(), R"({"n":3})").status, 200);
  EXPECT_EQ(cloud_->report("dev1", "https"), nlohmann::json({{"n", 3}}));
}

TEST_F(CloudHttpTest, TheHostNameIsVerified) {
  // A server whose certificate names 127.0.0.1 and localhost, listening on 127.0.0.2 (also the
  // loopback): the SDK's test server, since the cloud listens on 127.0.0.1.
  const auto pki = baetyl::testing::make_test_pki(dir_.path() / "pki");
  baetyl::testing::TlsFiles files{.cert = pki.server_cert.string(),
                                  .key = pki.server_key.string(),
                                  .listen_address = "127.0.0.2"};
  baetyl::testing::HttpTestServer server(files);
  server.respond(200, "{}");
  const std::string url = "https://127.0.0.2:" + std::to_string(server.tls_port()) + "/in";
  CloudHttpOptions options{.timeout = 10s, .ca = pki.ca.string()};
  const std::string error = error_of([&] { CloudHttp(options).post_json(url, "{}"); });
  EXPECT_THAT(error, HasSubstr("POST " + url + ": "));
  EXPECT_THAT(error, HasSubstr("127.0.0.2"));
  EXPECT_EQ(server.request_count(), 0u);

  options.insecure_skip_verify = true;
  EXPECT_EQ(CloudHttp(options).post_json(url, "{}").status, 200);
  EXPECT_EQ(server.request_count(), 1u);
}

TEST_F(CloudHttpTest, PlainHttpIsRefused) {
  std::string url = cloud_->https_address() + "/volumes/x.zip";
  url.replace(0, 5, "http");
  const std::string error =
      error_of([&] { CloudHttp(device()).download(url, dir_.path() / "x.zip", 1 << 20); });
  EXPECT_THAT(error, HasSubstr("GET " + url + ": Unsupported protocol"));
}

TEST_F(CloudHttpTest, RedirectsAreFollowedOverHttpsOnlyAndAtMostThree) {
  const auto [url, md5] = volume("moved", 1000);
  const fs::path file = dir_.path() / "moved.zip";
  auto via_redirect = [](const std::string& to) {
    return cloud_->https_address() + "/redirect?to=" + to;  // to holds no character to escape
  };
  CloudHttp(device()).download(via_redirect(url), file, 1 << 20);
  EXPECT_EQ(file_md5_base64(file), md5);

  std::string plain = url;
  plain.replace(0, 5, "http");
  EXPECT_THAT(error_of([&] { CloudHttp(device()).download(via_redirect(plain), file, 1 << 20); }),
              HasSubstr("Unsupported protocol"));
  EXPECT_FALSE(fs::exists(file));

  // Three redirects are followed (each URL escaped for the query of the one before); four are
  // too many.
  auto escaped = [](std::string url) {
    std::string out;
    for (const char c : url) {
      if (c == ':' || c == '/' || c == '?' || c == '=' || c == '%' || c == '&') {
        static constexpr char kHex[] = "0123456789ABCDEF";
        out += '%';
        out += kHex[static_cast<unsigned char>(c) >> 4];
        out += kHex[static_cast<unsigned char>(c) & 15];
      } else {
        out += c;
      }
    }
    return out;
  };
  std::string chain = url;
  for (int i = 0; i < 3; ++i) chain = via_redirect(escaped(chain));
  CloudHttp(device()).download(chain, file, 1 << 20);
  EXPECT_EQ(file_md5_base64(file), md5);
  chain = via_redirect(escaped(chain));
  EXPECT_THAT(error_of([&] { CloudHttp(device()).download(chain, file, 1 << 20); }),
              HasSubstr("GET " + chain + ": Number of redirects hit maximum amount"));

  // A redirected report is posted again, not turned into a GET.
  EXPECT_EQ(CloudHttp(device()).post_json(via_redirect(report_url()), R"({"n":4})").status, 200);
  EXPECT_EQ(cloud_->report("dev1", "https"), nlohmann::json({{"n", 4}}));
}

TEST_F(CloudHttpTest, AServerThatDoesNotAnswerTimesOut) {
  baetyl::testing::LoopbackListener silent;  // connections wait in its backlog, never answered
  CloudHttpOptions options = device();
  options.timeout = 300ms;
  const std::string url = "https://127.0.0.1:" + std::to_string(silent.port()) + "/v1/edge/info";
  const auto started = std::chrono::steady_clock::now();
  EXPECT_THAT(error_of([&] { CloudHttp(options).post_json(url, "{}"); }),
              HasSubstr("POST " + url + ": Timeout was reached"));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST_F(CloudHttpTest, ProxiesComeFromTheEnvironment) {
  const auto [url, md5] = volume("proxied", 1000);
  const fs::path file = dir_.path() / "proxied.zip";
  const std::string authority = url.substr(8, url.find('/', 8) - 8);  // 127.0.0.1:<port>
  baetyl::testing::HttpTestProxy proxy;
  const std::string missing_proxy =
      "http://127.0.0.1:" + std::to_string(baetyl::testing::free_port());
  ::setenv("http_proxy", missing_proxy.c_str(), 1);  // for http:// URLs only: not used
  ::setenv("https_proxy", proxy.url().c_str(), 1);
  CloudHttp(device()).download(url, file, 1 << 20);
  EXPECT_EQ(file_md5_base64(file), md5);
  ASSERT_EQ(proxy.requests().size(), 1u);
  EXPECT_EQ(proxy.requests()[0].method, "CONNECT");
  EXPECT_EQ(proxy.requests()[0].target, authority);

  ::setenv("no_proxy", "127.0.0.0/8", 1);
  CloudHttp(device()).download(url, file, 1 << 20);
  EXPECT_EQ(proxy.requests().size(), 1u) << "no_proxy covers the cloud";
  ::unsetenv("no_proxy");

  ::unsetenv("https_proxy");
  ::setenv("ALL_PROXY", proxy.url().c_str(), 1);
  CloudHttp(device()).download(url, file, 1 << 20);
  EXPECT_EQ(proxy.requests().size(), 2u);

  // A proxy that is not there: the exchange fails, naming the URL (curl's reason said once).
  ::setenv("ALL_PROXY", missing_proxy.c_str(), 1);
  const std::string error = error_of([&] { CloudHttp(device()).download(url, file, 1 << 20); });
  EXPECT_THAT(error, HasSubstr("GET " + url + ": Couldn't connect to server (Failed to connect"));
  EXPECT_THAT(error, ::testing::Not(HasSubstr("Couldn't connect to server)")));
}

// A cloud whose HTTPS server requires a client certificate.
TEST(CloudHttpClientCertificate, IsSentAndWithoutOneTheExchangeFails) {
  for (const char* name : kProxyVariables) ::unsetenv(name);
  CloudRun cloud({"dev1"}, {"--require-client-cert"});
  const std::string url = cloud.https_address() + "/v1/edge/info";
  CloudHttpOptions options{.timeout = 10s,
                           .ca = cloud.pki("ca.pem").string(),
                           .cert = cloud.pki("device-dev1.pem").string(),
                           .key = cloud.pki("device-dev1.key").string()};
  EXPECT_EQ(CloudHttp(options).post_json(url, R"({"n":5})").status, 200);
  EXPECT_EQ(cloud.report("dev1", "https"), nlohmann::json({{"n", 5}}));

  options.cert.clear();
  options.key.clear();
  EXPECT_THAT(error_of([&] { CloudHttp(options).post_json(url, R"({"n":6})"); }),
              HasSubstr("POST " + url + ": "));
  EXPECT_EQ(cloud.report("dev1", "https"), nlohmann::json({{"n", 5}}));
}

}  // namespace
}  // namespace baetyl::agent
