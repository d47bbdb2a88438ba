#include "hub_test_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <stdexcept>
#include <utility>

#include "baetyl/testing/ports.h"

namespace baetyl::hub::testing {

std::string open_config(std::uint16_t port, const std::string& storage_dir) {
  return "listen: [tcp://127.0.0.1:" + std::to_string(port) + "]\n" +
         "principals:\n"
         "  - username: test\n"
         "    password: hahaha\n"
         "    permissions:\n"
         "      - {action: pub, permit: ['#']}\n"
         "      - {action: sub, permit: ['#']}\n" +
         "storage: {dir: " + storage_dir + "}\n";
}

std::string base_config(std::uint16_t port, const std::string& extra) {
  return "listen:\n"
         "  - tcp://127.0.0.1:" +
         std::to_string(port) +
         "\n"
         "principals:\n"
         "  - username: test\n"
         "    password: hahaha\n"
         "    permissions:\n"
         "      - action: pub\n"
         "        permit: ['#']\n"
         "        deny: ['forbidden/#']\n"
         "      - action: sub\n"
         "        permit: ['#']\n"
         "        deny: ['secret/#']\n"
         "  - username: limited\n"
         "    password: pw\n"
         "    permissions:\n"
         "      - {action: pub, permit: ['limited/#']}\n"
         "      - {action: sub, permit: ['limited/+']}\n"
         "subscriptions:\n"
         "  - source: {topic: t}\n"
         "    target: {topic: t/topic}\n"
         "logger: {level: debug}\n" +
         extra;
}

HubProcess::HubProcess(std::string config, std::uint16_t port) : port_(port) {
  dir_.write("etc/baetyl/service.yml", config);
  start();
}

HubProcess::~HubProcess() {
  if (process_ && ::testing::Test::HasFailure()) {
    std::fprintf(stderr, "---- hub output ----\n%s\n", process_->output().c_str());
  }
}

void HubProcess::start() {
  baetyl::testing::ProcessOptions options;
  options.working_dir = dir_.path().string();
  options.output_file = (dir_.path() / "output.log").string();
  options.env = {{"BAETYL_SERVICE_NAME", "hub"}};
  process_ = std::make_unique<baetyl::testing::Process>(
      std::vector<std::string>{baetyl::testing::binary_path("baetyl-hub")}, options);
  if (!baetyl::testing::wait_for_port(port_, 10s)) {
    throw std::runtime_error("hub did not listen on " + std::to_string(port_) + ":\n" +
                             process_->output());
  }
}

int HubProcess::stop(int signal) { return process_->stop(signal); }

std::string HubProcess::output() const { return process_ ? process_->output() : ""; }

long HubProcess::rss_kb() const { return baetyl::testing::status_kib(pid()); }

long HubProcess::last_stat(const std::string& key) const {
  const std::string out = output();
  const std::string needle = "\"" + key + "\":";
  const auto at = out.rfind(needle);
  return at == std::string::npos ? -1 : std::stol(out.substr(at + needle.size()));
}

RawClient::RawClient(std::uint16_t port, const std::string& host) {
  const bool v6 = host.find(':') != std::string::npos;
  fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) throw std::runtime_error("socket failed");
  int rc;
  if (v6) {
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_port = htons(port);
    inet_pton(AF_INET6, host.c_str(), &addr.sin6_addr);
    rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
    rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  if (rc != 0)
    throw std::runtime_error("connect to " + host + ":" + std::to_string(port) + " failed");
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

RawClient::~RawClient() { close(); }

void RawClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void RawClient::send(const mqtt::Packet& packet) { send_raw(mqtt::encode(packet, version_)); }

void RawClient::send_raw(const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;  // the peer closed; receive() will tell
    done += static_cast<std::size_t>(n);
  }
}

std::optional<mqtt::Packet> RawClient::receive(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto result = mqtt::decode(buffer_, {}, version_);
    if (result.status == mqtt::DecodeStatus::Ok) {
      buffer_.erase(0, result.consumed);
      return std::move(result.packet);
    }
    if (result.status == mqtt::DecodeStatus::Error) {
      ADD_FAILURE() << "hub sent a malformed packet: " << result.error;
      return std::nullopt;
    }
    if (eof_ || fd_ < 0) return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      eof_ = true;
      continue;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

template <class T>
T RawClient::expect(std::chrono::milliseconds timeout) {
  auto packet = receive(timeout);
  if (!packet) {
    ADD_FAILURE() << "expected a packet, got none";
    return T{};
  }
  if (!std::holds_alternative<T>(*packet)) {
    ADD_FAILURE() << "expected another packet than " << mqtt::to_string(mqtt::type_of(*packet));
    return T{};
  }
  return std::get<T>(*packet);
}

template mqtt::Connack RawClient::expect<mqtt::Connack>(std::chrono::milliseconds);
template mqtt::Publish RawClient::expect<mqtt::Publish>(std::chrono::milliseconds);
template mqtt::Puback RawClient::expect<mqtt::Puback>(std::chrono::milliseconds);
template mqtt::Pubrec RawClient::expect<mqtt::Pubrec>(std::chrono::milliseconds);
template mqtt::Pubrel RawClient::expect<mqtt::Pubrel>(std::chrono::milliseconds);
template mqtt::Pubcomp RawClient::expect<mqtt::Pubcomp>(std::chrono::milliseconds);
template mqtt::Suback RawClient::expect<mqtt::Suback>(std::chrono::milliseconds);
template mqtt::Unsuback RawClient::expect<mqtt::Unsuback>(std::chrono::milliseconds);
template mqtt::Pingresp RawClient::expect<mqtt::Pingresp>(std::chrono::milliseconds);
template mqtt::Disconnect RawClient::expect<mqtt::Disconnect>(std::chrono::milliseconds);

bool RawClient::closed_by_peer(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!receive(left) && eof_) return true;
  }
  return eof_;
}

bool RawClient::silent_for(std::chrono::milliseconds quiet) {
  auto packet = receive(quiet);
  if (packet) buffer_.insert(0, mqtt::encode(*packet, version_));
  return !packet;
}

mqtt::Connack RawClient::connect(const mqtt::Connect& connect) {
  if (connect.protocol_level == 5) version_ = mqtt::ProtocolVersion::V5;
  send(connect);
  return expect<mqtt::Connack>();
}

mqtt::Connect make_connect(const std::string& client_id, bool clean, const std::string& username,
                           const std::string& password) {
  mqtt::Connect c;
  c.client_id = client_id;
  c.clean_session = clean;
  c.keep_alive = 60;
  if (!username.empty()) c.username = username;
  if (!password.empty()) c.password = password;
  return c;
}

mqtt::Connect make_connect_v5(const std::string& client_id, bool clean_start,
                              std::uint32_t session_expiry, const std::string& username,
                              const std::string& password) {
  mqtt::Connect c = make_connect(client_id, clean_start, username, password);
  c.protocol_level = 5;
  if (session_expiry != 0) {
    c.properties.add(mqtt::PropertyId::SessionExpiryInterval, session_expiry);
  }
  return c;
}

mqtt::Publish publish_packet(std::string topic, std::string payload, std::uint8_t qos,
                             std::uint16_t id, mqtt::Properties properties, bool retain) {
  mqtt::Publish p;
  p.topic = std::move(topic);
  p.payload = std::move(payload);
  p.qos = qos;
  p.packet_id = qos ? id : 0;
  p.retain = retain;
  p.properties = std::move(properties);
  return p;
}

void expect_none_lost(const std::set<std::string>& acked, const std::set<std::string>& received) {
  std::vector<std::string> lost;
  for (const auto& a : acked) {
    if (!received.contains(a)) lost.push_back(a);
  }
  EXPECT_TRUE(lost.empty()) << lost.size() << " of " << acked.size()
                            << " acknowledged messages lost, e.g. " << lost.front();
}

Run run_to_end(const baetyl::testing::TempDir& dir, const std::vector<std::string>& argv,
               std::chrono::milliseconds timeout) {
  static std::atomic<int> counter{0};
  baetyl::testing::ProcessOptions options;
  options.output_file = (dir.path() / ("run-" + std::to_string(counter++) + ".out")).string();
  baetyl::testing::Process process(argv, options);
  auto code = process.wait(timeout);
  return {code.value_or(-1), process.output()};
}

std::string python_client_path() {
  return std::string(BAETYL_SOURCE_DIR) + "/modules/hub/tests/paho_client.py";
}

}  // namespace baetyl::hub::testing
